"""Generated goods-to-person floors, and a rebuild of RHCR's Kiva benchmark floor.

A generated floor, seen from above (north up):

    row 0          stow stations (queue cells, then the working cell), walls between
    ring road      a free loop around everything inside; optionally one-way
    storage area   blocks of 1 or 2 x N shelves between aisles; parking groups at the
                   west and east ends of the block rows ("PP" columns beside an aisle)
    ring road
    last row       pick stations, then the packing area at the east end

Chargers sit in the west and east edge columns, docking off the ring road. Packing
cells that the last row has no room for continue up the west and east edge columns from
the south corners, the nearest free edge to the pick stations. Every
station's working cell is in an edge row, so the operator stands outside the grid.

The generator writes nothing it has not validated: it returns the map as parsed back
from its own file text, so a generated map always loads and round-trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from maps.loader import dump_map, parse_map
from maps.model import KIND_CODES, Cell, CellKind, Heading, Station, StationKind, WarehouseMap


class LayoutError(ValueError):
    """Parameters that cannot make a floor; the message says which and why."""


@dataclass(frozen=True)
class LayoutSpec:
    """What a generated floor should hold. Give either block counts or a size per axis.

    `width`/`height` fit as many blocks as the cells allow and widen the roads with what
    is left over, so the floor has exactly that size.
    """

    name: str = "generated"
    description: str = ""
    block_rows: int | None = 4
    block_columns: int | None = 2
    block_depth: int = 2
    block_length: int = 8
    aisle_width: int = 1
    ring_width: int = 1
    pick_stations: int = 2
    stow_stations: int = 1
    queue_length: int = 4
    #: 1, or 2: two working cells side by side, each at the end of its own queue (the
    #: upstream one, and a mirrored one entered from downstream), one operator between them
    working_cells: int = 1
    chargers: int = 6
    parking: int = 20
    packing: int = 4
    one_way: bool = False
    #: with one_way: the inner ring lane along the station edges (south and north, where it
    #: borders no storage) one-way too, against the outer lane: a two-lane road in front of
    #: the stations, so robots crossing to a far station meet none head-on there (the sides
    #: stay two-way: robots turn off them into parking, chargers and packing)
    counterflow: bool = False
    pitch: float = 1.0
    qr_prefix: str = ""
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.block_depth not in (1, 2):
            problems.append(f"block_depth must be 1 or 2 (a loaded robot reaches a shelf only from an aisle beside it), got {self.block_depth}")
        for key in ("block_length", "aisle_width", "ring_width", "queue_length"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("pick_stations", "stow_stations", "chargers", "parking", "packing"):
            if getattr(self, key) < 0:
                problems.append(f"{key} must not be negative, got {getattr(self, key)}")
        if self.working_cells not in (1, 2):
            problems.append(f"working_cells must be 1 or 2, got {self.working_cells}")
        if self.pick_stations + self.stow_stations == 0:
            problems.append("a floor needs at least one pick or stow station")
        if self.one_way and self.ring_width < 2:
            problems.append("one_way needs ring_width >= 2: the one-way outer lane needs a two-way inner lane beside it")
        if self.counterflow and not self.one_way:
            problems.append("counterflow needs one_way: the inner lane runs against a one-way outer lane")
        if self.pitch <= 0:
            problems.append(f"pitch must be positive, got {self.pitch}")
        for count, size in (("block_rows", "height"), ("block_columns", "width")):
            if getattr(self, size) is None and (getattr(self, count) or 0) < 1:
                problems.append(f"give {count} >= 1 or {size}")
        if problems:
            raise LayoutError("; ".join(problems))


class _Role(Enum):
    """What a whole row or column of the floor is for; a cell's kind follows from both."""

    EDGE = "edge"
    RING = "ring"
    AISLE = "aisle"
    BLOCK = "block"
    PARKING = "parking"


def _span(block_count: int, block_size: int, aisle: int) -> list[_Role]:
    roles: list[_Role] = []
    for i in range(block_count):
        if i:
            roles += [_Role.AISLE] * aisle
        roles += [_Role.BLOCK] * block_size
    return roles


def _fit(total: int, block_size: int, aisle: int, what: str) -> int:
    """How many blocks fit in `total` cells."""
    count = (total + aisle) // (block_size + aisle)
    if count < 1:
        raise LayoutError(f"no room for a single block: {what} leaves {total} cells, a block needs {block_size}")
    return count


def _padded(roles: list[_Role], total: int) -> list[_Role]:
    """The roles with free aisle lines added on both sides to fill `total` cells."""
    pad = total - len(roles)
    return [_Role.AISLE] * (pad // 2) + roles + [_Role.AISLE] * (pad - pad // 2)


def _spread(count: int, footprint: int, start: int, stop: int, what: str) -> list[int]:
    """Left ends of `count` footprints spread evenly over [start, stop), a wall between each."""
    free = stop - start
    need = count * footprint + max(count - 1, 0)
    if need > free:
        raise LayoutError(f"{what} need {need} cells along the edge but only {free} are free; "
                          "use a wider floor, fewer stations or shorter queues")
    if count == 0:
        return []
    gap = (free - count * footprint) / (count + 1)
    if gap < 1:  # spread evenly, rounding would put two footprints side by side: pack them, one wall apart
        return [start + (free - need) // 2 + i * (footprint + 1) for i in range(count)]
    return [start + round(gap * (i + 1) + footprint * i) for i in range(count)]


def generate_layout(spec: LayoutSpec) -> WarehouseMap:
    """A validated floor built to `spec` (LayoutError if the parameters cannot fit)."""
    ring = spec.ring_width
    rows = _rows(spec)
    group_capacity = 2 * sum(r is _Role.BLOCK for r in rows)
    west_parking = math.ceil(spec.parking / 2)
    west_groups = math.ceil(west_parking / group_capacity)
    east_groups = math.ceil((spec.parking - west_parking) / group_capacity)
    cols = _columns(spec, west_groups, east_groups)
    width, height = len(cols), len(rows)

    grid = np.full((height, width), KIND_CODES[CellKind.AISLE], dtype=np.uint8)
    row_roles = np.array([r.value for r in rows])
    col_roles = np.array([c.value for c in cols])
    block_row = row_roles == _Role.BLOCK.value
    grid[np.ix_(block_row, col_roles == _Role.BLOCK.value)] = KIND_CODES[CellKind.STORAGE]
    parking_col = col_roles == _Role.PARKING.value
    west_half = np.arange(width) < width // 2
    _place_parking(grid, block_row, parking_col & west_half, west_parking)
    _place_parking(grid, block_row, parking_col & ~west_half, spec.parking - west_parking)
    grid[[0, -1], :] = KIND_CODES[CellKind.BLOCKED]
    grid[:, [0, -1]] = KIND_CODES[CellKind.BLOCKED]

    stations, packing = _edge_features(spec, width, height)
    chargers = _charger_cells(spec.chargers, width, height, ring)
    for what, clash in (("the chargers", set(packing) & set(chargers)), ("the north ring", {c for c in packing if c.y <= ring})):
        if clash:
            raise LayoutError(f"{spec.packing} packing cells do not fit: beyond the south edge they go up the side "
                              f"edges and reach {what} at {min(clash, key=lambda c: (c.y, c.x))}; "
                              "use fewer packing cells or chargers")
    for st in stations:
        _mark_station(grid, st)
    for kind, cells in ((CellKind.PACKING, packing), (CellKind.CHARGER, chargers)):
        for cell in cells:
            grid[cell.y, cell.x] = KIND_CODES[kind]
    # Edge cells a robot turns into from the outer ring lane, or out of onto it: it must be
    # two-way beside them. A robot leaving a working cell crosses straight to the inner
    # lane: sent along the one-way lane it queued behind the robots waiting to turn into
    # the station's downstream queue, which waited for it to leave (a gridlock).
    entries = {queue[0] for st in stations for queue in st.queues} | {c for st in stations for c in st.working}
    entries |= set(packing) | set(chargers)

    one_way = _ring_arrows(rows, cols, entries, spec.counterflow) if spec.one_way else {}
    draft = WarehouseMap(
        name=spec.name, width=width, height=height, pitch=spec.pitch, kinds=grid, stations=tuple(stations),
        one_way=one_way, qr_prefix=spec.qr_prefix, description=spec.description,
    )
    return parse_map(dump_map(draft), source=f"<generated {spec.name}>")


def _mark_station(grid: np.ndarray, station: Station) -> None:
    for cell in station.working:
        grid[cell.y, cell.x] = KIND_CODES[CellKind.WORKING]
    for queue in station.queues:
        for cell in queue:
            grid[cell.y, cell.x] = KIND_CODES[CellKind.QUEUE]


def _edge_features(spec: LayoutSpec, width: int, height: int) -> tuple[list[Station], list[Cell]]:
    """Pick stations then the packing area along the south edge, stow stations along the north;
    packing cells beyond the south edge's room go up the side edges from the south corners.

    Queues run in the ring road's counter-clockwise direction (east on the south side,
    west on the north side), so a robot joins at the upstream end and leaves downstream.
    A station with two working cells has them side by side in the middle, the second at
    the end of a mirrored queue that a robot enters after driving past the station.
    """
    inner = (1 + spec.ring_width, width - 1 - spec.ring_width)  # edge cells beside the straight ring lanes
    length, two = spec.queue_length, spec.working_cells == 2
    footprint = (length + 1) * spec.working_cells
    stations_need = spec.pick_stations * (footprint + 1)  # each with a wall after it
    south_packing = min(spec.packing, max(inner[1] - inner[0] - stations_need, 0))
    packing_start = inner[1] - south_packing
    south, north = height - 1, 0
    stations = []
    pick_stop = packing_start - 1 if south_packing else inner[1]
    for i, x0 in enumerate(_spread(spec.pick_stations, footprint, inner[0], pick_stop, f"{spec.pick_stations} pick stations")):
        upstream = (Cell(x0 + length, south), tuple(Cell(x0 + k, south) for k in range(length)))
        downstream = (Cell(x0 + length + 1, south), tuple(Cell(x0 + 2 * length + 1 - k, south) for k in range(length)))
        lines = (upstream, downstream) if two else (upstream,)
        stations.append(Station(f"pick-{i + 1}", StationKind.PICK, tuple(w for w, _ in lines),
                                tuple(q for _, q in lines), Heading.SOUTH))
    for i, x0 in enumerate(_spread(spec.stow_stations, footprint, inner[0], inner[1], f"{spec.stow_stations} stow stations")):
        shift = length + 1 if two else 0
        upstream = (Cell(x0 + shift, north), tuple(Cell(x0 + shift + length - k, north) for k in range(length)))
        downstream = (Cell(x0 + length, north), tuple(Cell(x0 + k, north) for k in range(length)))
        lines = (upstream, downstream) if two else (upstream,)
        stations.append(Station(f"stow-{i + 1}", StationKind.STOW, tuple(w for w, _ in lines),
                                tuple(q for _, q in lines), Heading.NORTH))
    side = spec.packing - south_packing
    corner = south - 1 - spec.ring_width  # the side edges' southmost cells beside the ring's side lanes
    packing = [Cell(x, south) for x in range(packing_start, inner[1])]
    for x, n in ((0, math.ceil(side / 2)), (width - 1, side // 2)):
        packing += [Cell(x, corner - k) for k in range(n)]
    return stations, packing


def _rows(spec: LayoutSpec) -> list[_Role]:
    ring, aisle = spec.ring_width, spec.aisle_width
    if spec.height is not None:
        interior = spec.height - 2 - 2 * ring
        count = _fit(interior, spec.block_depth, aisle, f"height {spec.height} minus edges and ring road")
        storage = _padded(_span(count, spec.block_depth, aisle), interior)
    else:
        storage = _span(spec.block_rows or 0, spec.block_depth, aisle)
    return [_Role.EDGE] + [_Role.RING] * ring + storage + [_Role.RING] * ring + [_Role.EDGE]


def _columns(spec: LayoutSpec, west_groups: int, east_groups: int) -> list[_Role]:
    ring, aisle = spec.ring_width, spec.aisle_width
    west = [_Role.PARKING, _Role.PARKING, _Role.AISLE] * west_groups
    east = [_Role.AISLE, _Role.PARKING, _Role.PARKING] * east_groups
    if spec.width is not None:
        interior = spec.width - 2 - 2 * ring - len(west) - len(east)
        count = _fit(interior, spec.block_length, aisle,
                     f"width {spec.width} minus edges, ring road and {west_groups + east_groups} parking group(s) of 3 columns")
        storage = _padded(_span(count, spec.block_length, aisle), interior)
    else:
        storage = _span(spec.block_columns or 0, spec.block_length, aisle)
    return [_Role.EDGE] + [_Role.RING] * ring + west + storage + east + [_Role.RING] * ring + [_Role.EDGE]


def _place_parking(grid: np.ndarray, block_row: np.ndarray, parking_col: np.ndarray, count: int) -> None:
    """Share `count` parking cells evenly over the column pairs, each filled from the top."""
    ys = np.flatnonzero(block_row)
    pairs = np.flatnonzero(parking_col).reshape(-1, 2)
    for i, pair in enumerate(pairs):
        share = count // len(pairs) + (i < count % len(pairs))
        cells = [(y, x) for y in ys for x in pair][:share]
        if cells:
            yy, xx = zip(*cells)
            grid[list(yy), list(xx)] = KIND_CODES[CellKind.PARKING]


def _charger_cells(count: int, width: int, height: int, ring: int) -> list[Cell]:
    """Chargers centred on the west edge column (the larger half) and the east edge column."""
    top, bottom = 1 + ring, height - 1 - ring
    room = bottom - top
    west, east = math.ceil(count / 2), count // 2
    if west > room:
        raise LayoutError(f"{count} chargers need {west} cells per side edge but only {room} are beside the storage rows")
    cells = []
    for x, n in ((0, west), (width - 1, east)):
        y0 = top + (room - n) // 2
        cells += [Cell(x, y) for y in range(y0, y0 + n)]
    return cells


def _ring_arrows(rows: list[_Role], cols: list[_Role], entries: set[Cell], counterflow: bool) -> dict[Cell, Heading]:
    """A counter-clockwise one-way outer lane, left two-way wherever a robot turns off it;
    with `counterflow` the innermost ring lane along the south and north edges runs the
    other way (two-way where the outer lane is), where it does not border storage.

    A one-way cell may be left only along its arrow, so the lane stays plain where it
    meets an aisle or inner ring line, and beside every station entry, charger and
    packing cell, so that robots can turn in there.
    """
    width, height = len(cols), len(rows)
    crossing = {_Role.AISLE, _Role.RING}
    arrows: dict[Cell, Heading] = {
        Cell(1, 1): Heading.SOUTH, Cell(1, height - 2): Heading.EAST,
        Cell(width - 2, height - 2): Heading.NORTH, Cell(width - 2, 1): Heading.WEST,
    }
    lanes = [(1, 0, Heading.WEST), (height - 2, height - 1, Heading.EAST)]
    if counterflow:
        ring = rows.count(_Role.RING) // 2
        # not beside storage: a loaded robot reaches a shelf there only by turning off the lane
        lanes += [(y, edge_y, heading) for y, beside, edge_y, heading in (
            (ring, ring + 1, 0, Heading.EAST), (height - 1 - ring, height - 2 - ring, height - 1, Heading.WEST))
            if rows[beside] is not _Role.BLOCK]
    for y, edge_y, heading in lanes:
        for x in range(2, width - 2):
            if cols[x] not in crossing and Cell(x, edge_y) not in entries:
                arrows[Cell(x, y)] = heading
    for x, edge_x, heading in ((1, 0, Heading.SOUTH), (width - 2, width - 1, Heading.NORTH)):
        for y in range(2, height - 2):
            if rows[y] not in crossing and Cell(edge_x, y) not in entries:
                arrows[Cell(x, y)] = heading
    return arrows


# --- RHCR's Kiva floor -----------------------------------------------------------------

class KivaLayout(NamedTuple):
    """The Kiva floor plus the cell lists a routing benchmark draws tasks and starts from."""

    map: WarehouseMap
    endpoints: list[Cell]
    homes: list[Cell]


_KIVA_BANDS = 8
_KIVA_BLOCKS = 3
_KIVA_BLOCK_LENGTH = 10


def kiva_layout() -> KivaLayout:
    """RHCR's Kiva map (Li et al. 2021), 46 x 33 cells, in our format.

    Shelf blocks are blocked cells; the task endpoints above and below them are storage
    cells (where a robot meets a shelf); the robot home cells are parking, except two
    small stations carved out of them (our format needs one), so parking + working +
    queue cells are exactly RHCR's 192 home cells.
    """
    home_pair = "PP"
    side = "." + home_pair + "." + home_pair + "."
    blocks = ".".join(["{0}" * _KIVA_BLOCK_LENGTH] * _KIVA_BLOCKS)
    line = side + blocks + side
    aisle_row = "." * len(line.format("x"))
    rows = [aisle_row]
    for _ in range(_KIVA_BANDS):
        rows += [line.format("S"), line.format("#"), line.format("S"), aisle_row]
    width, height = len(aisle_row), len(rows)
    grid = np.array([[KIND_CODES[CellKind(ch)] for ch in row] for row in rows], dtype=np.uint8)
    homes = [Cell(int(x), int(y)) for y, x in zip(*np.nonzero(grid == KIND_CODES[CellKind.PARKING]))]
    endpoints = [Cell(int(x), int(y)) for y, x in zip(*np.nonzero(grid == KIND_CODES[CellKind.STORAGE]))]

    middle = 1 + 4 * (_KIVA_BANDS // 2)  # first row of a middle band
    stations = (
        Station("pick-1", StationKind.PICK, (Cell(1, middle + 1),), ((Cell(2, middle), Cell(2, middle + 1)),), Heading.WEST),
        Station("stow-1", StationKind.STOW, (Cell(width - 2, middle + 1),),
                ((Cell(width - 3, middle), Cell(width - 3, middle + 1)),), Heading.EAST),
    )
    for st in stations:
        _mark_station(grid, st)
    draft = WarehouseMap(
        name="kiva", width=width, height=height, pitch=1.0, kinds=grid, stations=stations,
        description="RHCR's Kiva benchmark floor (Li et al. 2021): 240 shelf cells, 480 endpoints, 192 homes",
    )
    return KivaLayout(parse_map(dump_map(draft), source="<generated kiva>"), endpoints, homes)


def write_cells(path: str | Path, cells: Iterable[Cell]) -> None:
    """One `x y` line per cell (x = column, y = row), as the routing benchmark reads them."""
    Path(path).write_text("".join(f"{c.x} {c.y}\n" for c in cells), encoding="ascii")


# --- the maps we ship --------------------------------------------------------------------

#: Parameters of the shipped generated maps (`fleet map generate --preset NAME`);
#: `kiva` is the fixed RHCR floor from kiva_layout().
PRESETS: dict[str, LayoutSpec] = {
    "demo": LayoutSpec(
        name="demo", description="Demo floor: 2 pick + 1 stow stations, 160 shelves, room for 20 robots",
        width=30, height=20, block_rows=None, block_columns=None, block_length=8,
        pick_stations=2, stow_stations=1, queue_length=4, chargers=6, parking=20, packing=4,
    ),
    "medium": LayoutSpec(
        name="medium", description="Medium floor: 6 pick + 2 stow stations with two working cells, one-way ring road, two-lane road in front of the pick stations, room for 150 robots",
        width=80, height=60, block_rows=None, block_columns=None, block_length=10, ring_width=2, one_way=True, counterflow=True,
        pick_stations=6, stow_stations=2, queue_length=4, working_cells=2, chargers=30, parking=150, packing=24,
    ),
    "large": LayoutSpec(
        name="large", description="Large floor: 16 pick + 8 stow stations, two-wide aisles, one-way ring road, room for 1,100 robots",
        width=300, height=150, block_rows=None, block_columns=None, block_length=12, aisle_width=2, ring_width=2,
        one_way=True, pick_stations=16, stow_stations=8, queue_length=6, chargers=200, parking=1100, packing=16,
    ),
}
