"""The warehouse floor: a grid of cells, each with a kind and (if traversable) a QR code.

Conventions used everywhere in the stack (fleet/, drivers/, firmware_emulator/):

- A cell is `Cell(x, y)`: x is the column, y the row of the ASCII layout, both 0-based,
  row 0 being the first line of the layout (the north edge).
- Metric positions are in metres in a right-handed world frame: x grows east with the
  column, y grows north, so the layout's last row is y = 0. A cell's centre is at
  (x * pitch, (height - 1 - y) * pitch). This is what robots and VDA 5050 nodes carry.
- Headings are `Heading` values (EAST, NORTH, WEST, SOUTH); in radians they are
  0, pi/2, pi, -pi/2 (counter-clockwise from east), as VDA 5050's theta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Iterator, NamedTuple

import numpy as np


class Cell(NamedTuple):
    x: int
    y: int

    def __str__(self) -> str:
        return f"({self.x}, {self.y})"


class Heading(IntEnum):
    """The four grid headings, numbered counter-clockwise from east (as theta)."""

    EAST = 0
    NORTH = 1
    WEST = 2
    SOUTH = 3

    @property
    def step(self) -> tuple[int, int]:
        """(dx, dy) of one cell forward; y grows southward in the layout."""
        return _STEPS[self]

    @property
    def radians(self) -> float:
        return _RADIANS[self]

    @property
    def degrees(self) -> int:
        return (0, 90, 180, -90)[self]

    def left(self) -> "Heading":
        return Heading((self + 1) % 4)

    def right(self) -> "Heading":
        return Heading((self + 3) % 4)

    def opposite(self) -> "Heading":
        return Heading((self + 2) % 4)

    def quarter_turns_to(self, other: "Heading") -> int:
        """Signed number of 90 degree turns (-1, 0, 1, 2) from self to other."""
        diff = (other - self) % 4
        return -1 if diff == 3 else diff

    @classmethod
    def from_radians(cls, theta: float) -> "Heading":
        return cls(round(theta / (math.pi / 2)) % 4)

    @classmethod
    def between(cls, a: Cell, b: Cell) -> "Heading":
        """Heading from cell a to the adjacent cell b."""
        delta = (b.x - a.x, b.y - a.y)
        for heading, step in _STEPS.items():
            if step == delta:
                return heading
        raise ValueError(f"cells {a} and {b} are not adjacent")

    @classmethod
    def parse(cls, word: str) -> "Heading":
        try:
            return cls[word.strip().upper()]
        except KeyError:
            names = ", ".join(h.name.lower() for h in cls)
            raise ValueError(f"unknown heading {word!r}; expected one of {names}") from None


_STEPS = {Heading.EAST: (1, 0), Heading.NORTH: (0, -1), Heading.WEST: (-1, 0), Heading.SOUTH: (0, 1)}
_RADIANS = {Heading.EAST: 0.0, Heading.NORTH: math.pi / 2, Heading.WEST: math.pi, Heading.SOUTH: -math.pi / 2}


class CellKind(Enum):
    """What a cell is for. The value is the layout symbol."""

    AISLE = "."
    STORAGE = "S"
    WORKING = "W"
    QUEUE = "Q"
    CHARGER = "C"
    PARKING = "P"
    PACKING = "K"
    BLOCKED = "#"

    @property
    def traversable(self) -> bool:
        return self is not CellKind.BLOCKED


#: One-way aisle cells: the arrow is the only heading in which a robot may leave the cell.
ONE_WAY_SYMBOLS = {">": Heading.EAST, "^": Heading.NORTH, "<": Heading.WEST, "v": Heading.SOUTH}
#: Every symbol a layout may use, with the kind it stands for.
SYMBOLS: dict[str, CellKind] = {k.value: k for k in CellKind} | {s: CellKind.AISLE for s in ONE_WAY_SYMBOLS}
#: Dense integer codes for the kinds, used in the numpy grid.
KIND_CODES: dict[CellKind, int] = {kind: i for i, kind in enumerate(CellKind)}
KINDS_BY_CODE: list[CellKind] = list(CellKind)


class StationKind(str, Enum):
    PICK = "pick"
    STOW = "stow"


@dataclass(frozen=True)
class Station:
    """A port at the edge of the storage area where a person works a presented shelf.

    A station has one working cell, or two side by side: with two, the next shelf drives
    up to one while the operator works the shelf on the other, so the operator does not
    wait out the swap of shelves (the bound on a one-cell port's utilisation, docs/kpis.md).
    `queues[i]` is the queue that leads to `working[i]`, ordered from the entry (farthest
    from the working cell) to the cell next to it: a robot joins at queues[i][0] and
    moves up towards working[i].
    """

    id: str
    kind: StationKind
    working: tuple[Cell, ...]
    queues: tuple[tuple[Cell, ...], ...]
    operator_side: Heading

    @property
    def cells(self) -> tuple[Cell, ...]:
        """Every working and queue cell of the station."""
        return (*self.working, *(c for queue in self.queues for c in queue))


@dataclass
class WarehouseMap:
    """A loaded, validated floor. Immutable by convention once built."""

    name: str
    width: int
    height: int
    pitch: float
    kinds: np.ndarray  # (height, width) uint8 codes from KIND_CODES
    stations: tuple[Station, ...] = ()
    one_way: dict[Cell, Heading] = field(default_factory=dict)
    qr_prefix: str = ""
    qr_overrides: dict[Cell, str] = field(default_factory=dict)
    source: str = "<memory>"
    description: str = ""

    def __post_init__(self) -> None:
        self._qr_digits = max(3, len(str(max(self.width, self.height) - 1)))
        self._qr_of: dict[Cell, str] = {}
        self._cell_of_qr: dict[str, Cell] = {}
        ys, xs = np.nonzero(self.kinds != KIND_CODES[CellKind.BLOCKED])
        for y, x in zip(ys.tolist(), xs.tolist()):  # row-major, as cells()
            cell = Cell(x, y)
            qr = self.qr_overrides.get(cell) or self.default_qr(cell)
            self._qr_of[cell] = qr
            self._cell_of_qr.setdefault(qr, cell)
        self._station_by_id = {s.id: s for s in self.stations}

    # --- geometry -----------------------------------------------------------------
    def default_qr(self, cell: Cell) -> str:
        return f"{self.qr_prefix}{cell.x:0{self._qr_digits}d}{cell.y:0{self._qr_digits}d}"

    def in_bounds(self, cell: Cell) -> bool:
        return 0 <= cell.x < self.width and 0 <= cell.y < self.height

    def cells(self) -> Iterator[Cell]:
        for y in range(self.height):
            for x in range(self.width):
                yield Cell(x, y)

    def kind(self, cell: Cell) -> CellKind:
        return KINDS_BY_CODE[self.kinds[cell.y, cell.x]]

    def traversable(self, cell: Cell) -> bool:
        return self.in_bounds(cell) and self.kinds[cell.y, cell.x] != KIND_CODES[CellKind.BLOCKED]

    def cells_of(self, kind: CellKind) -> list[Cell]:
        ys, xs = np.nonzero(self.kinds == KIND_CODES[kind])
        return [Cell(int(x), int(y)) for y, x in zip(ys, xs)]

    def count(self, kind: CellKind) -> int:
        return int(np.count_nonzero(self.kinds == KIND_CODES[kind]))

    def may_leave(self, cell: Cell, heading: Heading) -> bool:
        """One-way lanes: a robot may leave a one-way cell only along its arrow."""
        arrow = self.one_way.get(cell)
        return arrow is None or arrow == heading

    def neighbours(self, cell: Cell) -> Iterator[tuple[Heading, Cell]]:
        """Traversable cells reachable in one forward move, respecting one-way lanes."""
        for heading in Heading:
            dx, dy = heading.step
            nxt = Cell(cell.x + dx, cell.y + dy)
            if self.traversable(nxt) and self.may_leave(cell, heading):
                yield heading, nxt

    def position(self, cell: Cell) -> tuple[float, float]:
        """Metric (x, y) of the cell's centre, y pointing north."""
        return cell.x * self.pitch, (self.height - 1 - cell.y) * self.pitch

    def cell_at(self, x: float, y: float) -> Cell:
        """The cell whose centre is nearest to metric (x, y), clamped to the map."""
        cx = min(max(round(x / self.pitch), 0), self.width - 1)
        cy = min(max(self.height - 1 - round(y / self.pitch), 0), self.height - 1)
        return Cell(int(cx), int(cy))

    # --- QR codes -------------------------------------------------------------------
    def qr_id(self, cell: Cell) -> str:
        try:
            return self._qr_of[cell]
        except KeyError:
            raise KeyError(f"cell {cell} of map {self.name!r} has no QR code (blocked or outside)") from None

    def cell_of_qr(self, qr: str) -> Cell:
        try:
            return self._cell_of_qr[qr]
        except KeyError:
            raise KeyError(f"QR code {qr!r} is not on map {self.name!r}") from None

    def has_qr(self, qr: str) -> bool:
        return qr in self._cell_of_qr

    # --- stations -------------------------------------------------------------------
    def station(self, station_id: str) -> Station:
        try:
            return self._station_by_id[station_id]
        except KeyError:
            raise KeyError(f"no station {station_id!r} on map {self.name!r}") from None

    def stations_of(self, kind: StationKind) -> list[Station]:
        return [s for s in self.stations if s.kind == kind]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "pitch_m": self.pitch,
            "cells": {kind.name.lower(): self.count(kind) for kind in CellKind},
            "one_way_cells": len(self.one_way),
            "stations": [
                {"id": s.id, "kind": s.kind.value, "working": [list(c) for c in s.working],
                 "queue_lengths": [len(q) for q in s.queues]}
                for s in self.stations
            ],
        }
