"""Reading, validating and writing map files (format: docs/map-format.md).

A map file is TOML: metadata keys plus a `layout` string with one character per cell.
Every problem found is reported with the file, line and column it concerns, and all
problems are reported at once, so whoever edits a map fixes it in one pass.
"""

from __future__ import annotations

import re
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from maps.model import (
    KIND_CODES,
    ONE_WAY_SYMBOLS,
    SYMBOLS,
    Cell,
    CellKind,
    Heading,
    Station,
    StationKind,
    WarehouseMap,
)


@dataclass(frozen=True)
class MapProblem:
    source: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class MapError(ValueError):
    """A map file that cannot be used; `problems` lists every reason with its place."""

    def __init__(self, problems: list[MapProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Places:
    """Finds the line and column in the raw text for things the TOML parser forgets."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.layout_first_line = self._layout_first_line()
        self.station_lines = [i + 1 for i, ln in enumerate(self.lines) if ln.strip() == "[[stations]]"]
        self.override_lines = [i + 1 for i, ln in enumerate(self.lines) if ln.strip() == "[[qr_overrides]]"]

    def _layout_first_line(self) -> int:
        for i, ln in enumerate(self.lines):
            m = re.match(r"\s*layout\s*=\s*('''|\"\"\")(.*)$", ln)
            if m:
                # TOML trims a newline right after the opening quotes.
                return i + 2 if m.group(2).strip() == "" else i + 1
        return 1

    def key_line(self, key: str) -> int:
        for i, ln in enumerate(self.lines):
            if re.match(rf"\s*{re.escape(key)}\s*=", ln):
                return i + 1
        return 1

    def cell(self, cell: Cell, message: str) -> MapProblem:
        """A problem located at a cell of the layout."""
        return MapProblem(self.source, self.layout_first_line + cell.y, cell.x + 1, message)

    def station(self, index: int, message: str) -> MapProblem:
        line = self.station_lines[index] if index < len(self.station_lines) else 1
        return MapProblem(self.source, line, 1, message)

    def at(self, line: int, message: str, column: int = 1) -> MapProblem:
        return MapProblem(self.source, line, column, message)


def load_map(path: str | Path) -> WarehouseMap:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapError([MapProblem(str(path), 0, 0, f"cannot read map file: {exc.strerror or exc}")]) from None
    return parse_map(text, source=str(path))


def parse_map(text: str, source: str = "<string>") -> WarehouseMap:
    places = _Places(source, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        raise MapError([places.at(line, f"not valid TOML: {exc}", col)]) from None
    problems: list[MapProblem] = []
    wmap = _build(data, places, problems)
    if wmap is not None:
        problems.extend(_validate(wmap, places))
    if problems:
        raise MapError(problems)
    assert wmap is not None
    return wmap


_KNOWN_KEYS = {"name", "description", "pitch", "qr_prefix", "layout", "stations", "qr_overrides"}


def _build(data: dict[str, Any], places: _Places, problems: list[MapProblem]) -> WarehouseMap | None:
    for key in data:
        if key not in _KNOWN_KEYS:
            problems.append(places.at(places.key_line(key), f"unknown key {key!r}; expected one of {sorted(_KNOWN_KEYS)}"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(places.at(places.key_line("name"), "missing or empty 'name' (a string)"))
        name = "unnamed"
    pitch = data.get("pitch", 1.0)
    if not isinstance(pitch, (int, float)) or isinstance(pitch, bool) or pitch <= 0:
        problems.append(places.at(places.key_line("pitch"), f"'pitch' must be a positive number of metres, got {pitch!r}"))
        pitch = 1.0
    qr_prefix = data.get("qr_prefix", "")
    if not isinstance(qr_prefix, str):
        problems.append(places.at(places.key_line("qr_prefix"), "'qr_prefix' must be a string"))
        qr_prefix = ""

    layout = data.get("layout")
    if not isinstance(layout, str) or not layout.strip():
        problems.append(places.at(places.key_line("layout"), "missing or empty 'layout' (a multi-line string, one character per cell)"))
        return None
    rows = layout.rstrip("\n").split("\n")
    width = len(rows[0])
    if width == 0:
        problems.append(places.at(places.layout_first_line, "the first layout row is empty"))
        return None
    height = len(rows)
    kinds = np.full((height, width), KIND_CODES[CellKind.BLOCKED], dtype=np.uint8)
    one_way: dict[Cell, Heading] = {}
    for y, row in enumerate(rows):
        if len(row) != width:
            problems.append(places.cell(Cell(min(len(row), width), y), f"ragged row: {len(row)} cells, but the first row has {width}"))
        for x, symbol in enumerate(row[:width]):
            kind = SYMBOLS.get(symbol)
            if kind is None:
                known = " ".join(sorted(SYMBOLS))
                problems.append(places.cell(Cell(x, y), f"unknown symbol {symbol!r}; known symbols: {known}"))
                continue
            kinds[y, x] = KIND_CODES[kind]
            if symbol in ONE_WAY_SYMBOLS:
                one_way[Cell(x, y)] = ONE_WAY_SYMBOLS[symbol]

    stations = _stations(data.get("stations", []), places, problems, width, height)
    overrides = _overrides(data.get("qr_overrides", []), places, problems, width, height)
    description = data.get("description", "")
    return WarehouseMap(
        name=name,
        width=width,
        height=height,
        pitch=float(pitch),
        kinds=kinds,
        stations=tuple(stations),
        one_way=one_way,
        qr_prefix=qr_prefix,
        qr_overrides=overrides,
        source=places.source,
        description=description if isinstance(description, str) else "",
    )


def _as_cell(value: Any, width: int, height: int) -> Cell | str:
    """A cell from `[x, y]`, or the reason it is not one."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return f"expected a cell as [x, y] (two integers), got {value!r}"
    cell = Cell(value[0], value[1])
    if not (0 <= cell.x < width and 0 <= cell.y < height):
        return f"cell {cell} is outside the {width} x {height} layout"
    return cell


def _stations(raw: Any, places: _Places, problems: list[MapProblem], width: int, height: int) -> list[Station]:
    if not isinstance(raw, list):
        problems.append(places.at(places.key_line("stations"), "'stations' must be an array of tables ([[stations]])"))
        return []
    stations: list[Station] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        label = f"station #{i + 1}"
        if not isinstance(entry, dict):
            problems.append(places.station(i, f"{label}: expected a table"))
            continue
        sid = entry.get("id")
        if not isinstance(sid, str) or not sid:
            problems.append(places.station(i, f"{label}: missing 'id'"))
            continue
        label = f"station {sid!r}"
        if sid in seen:
            problems.append(places.station(i, f"{label}: duplicate station id"))
            continue
        seen.add(sid)
        try:
            kind = StationKind(entry.get("kind"))
        except ValueError:
            problems.append(places.station(i, f"{label}: 'kind' must be 'pick' or 'stow', got {entry.get('kind')!r}"))
            continue
        try:
            side = Heading.parse(str(entry.get("operator_side", "")))
        except ValueError as exc:
            problems.append(places.station(i, f"{label}: 'operator_side': {exc}"))
            continue
        working = _as_cell(entry.get("working"), width, height)
        if isinstance(working, str):
            problems.append(places.station(i, f"{label}: 'working': {working}"))
            continue
        queue_raw = entry.get("queue", [])
        if not isinstance(queue_raw, list):
            problems.append(places.station(i, f"{label}: 'queue' must be a list of cells"))
            continue
        queue: list[Cell] = []
        for q in queue_raw:
            cell = _as_cell(q, width, height)
            if isinstance(cell, str):
                problems.append(places.station(i, f"{label}: 'queue': {cell}"))
                break
            queue.append(cell)
        else:
            stations.append(Station(sid, kind, working, tuple(queue), side))
    return stations


def _overrides(raw: Any, places: _Places, problems: list[MapProblem], width: int, height: int) -> dict[Cell, str]:
    if not isinstance(raw, list):
        problems.append(places.at(places.key_line("qr_overrides"), "'qr_overrides' must be an array of tables"))
        return {}
    out: dict[Cell, str] = {}
    for i, entry in enumerate(raw):
        line = places.override_lines[i] if i < len(places.override_lines) else 1
        cell = _as_cell(entry.get("cell") if isinstance(entry, dict) else None, width, height)
        qr = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(cell, str):
            problems.append(places.at(line, f"qr override #{i + 1}: {cell}"))
        elif not isinstance(qr, str) or not qr:
            problems.append(places.at(line, f"qr override #{i + 1}: 'id' must be a non-empty string"))
        else:
            out[cell] = qr
    return out


# --- whole-map checks ---------------------------------------------------------------

def _reach(wmap: WarehouseMap, starts: Iterable[Cell], allowed, reverse: bool = False) -> set[Cell]:
    """Cells reachable from `starts` (or that can reach them, if reverse) through `allowed` cells."""
    seen = {c for c in starts if allowed(c)}
    todo = deque(seen)
    while todo:
        cell = todo.popleft()
        for heading in Heading:
            dx, dy = heading.step
            nxt = Cell(cell.x + dx, cell.y + dy)
            if nxt in seen or not wmap.traversable(nxt) or not allowed(nxt):
                continue
            legal = wmap.may_leave(nxt, heading.opposite()) if reverse else wmap.may_leave(cell, heading)
            if legal:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _validate(wmap: WarehouseMap, places: _Places) -> list[MapProblem]:
    problems: list[MapProblem] = []
    if not wmap.stations:
        problems.append(places.at(1, "the map has no stations: add at least one [[stations]] table"))

    # Stations: working cell and an ordered, connected queue that ends beside it.
    claimed: dict[Cell, str] = {}
    for i, st in enumerate(wmap.stations):
        label = f"station {st.id!r}"
        if wmap.kind(st.working) is not CellKind.WORKING:
            problems.append(places.station(i, f"{label}: working cell {st.working} is {wmap.kind(st.working).name.lower()}, not a 'W' cell"))
        for cell in (st.working, *st.queue):
            if cell in claimed:
                problems.append(places.station(i, f"{label}: cell {cell} already belongs to station {claimed[cell]!r}"))
            claimed[cell] = st.id
        path = (*st.queue, st.working)
        for j, cell in enumerate(st.queue):
            if wmap.kind(cell) is not CellKind.QUEUE:
                problems.append(places.station(i, f"{label}: queue cell {cell} is {wmap.kind(cell).name.lower()}, not a 'Q' cell"))
            nxt = path[j + 1]
            if abs(cell.x - nxt.x) + abs(cell.y - nxt.y) != 1:
                problems.append(places.station(
                    i, f"{label}: queue is not a connected path ending at the working cell: {cell} is not next to {nxt}"))
    for kind in (CellKind.WORKING, CellKind.QUEUE):
        for cell in wmap.cells_of(kind):
            if cell not in claimed:
                problems.append(places.cell(cell, f"'{kind.value}' cell {cell} belongs to no station"))

    # QR codes: unique ids.
    owner: dict[str, Cell] = {}
    for cell in wmap.cells():
        if not wmap.kind(cell).traversable:
            continue
        qr = wmap.qr_id(cell)
        if qr in owner:
            problems.append(places.cell(cell, f"duplicate QR id {qr!r}: also used by cell {owner[qr]}"))
        else:
            owner[qr] = cell
    for cell in wmap.qr_overrides:
        if not wmap.kind(cell).traversable:
            problems.append(places.cell(cell, f"QR override on blocked cell {cell}"))

    # One-way arrows must lead somewhere.
    for cell, heading in wmap.one_way.items():
        dx, dy = heading.step
        if not wmap.traversable(Cell(cell.x + dx, cell.y + dy)):
            problems.append(places.cell(cell, f"one-way arrow at {cell} points {heading.name.lower()} into a blocked cell or off the map"))

    if problems or not wmap.stations:
        return problems

    # Reachability. An unloaded robot may drive under shelves; a loaded one only on
    # free cells, so a shelf's home must touch the free network the stations sit on.
    working = [s.working for s in wmap.stations]
    anywhere = lambda c: True  # noqa: E731
    free = lambda c: wmap.kind(c) is not CellKind.STORAGE  # noqa: E731
    both = _reach(wmap, working, free) & _reach(wmap, working, free, reverse=True)
    for cell in wmap.cells_of(CellKind.STORAGE):
        exits = [n for h, n in wmap.neighbours(cell) if n in both]
        entries = [n for h, n in _incoming(wmap, cell) if n in both]
        if not exits or not entries:
            problems.append(places.cell(cell, f"storage cell {cell} cannot be reached from any station by a loaded robot through free aisles"))
    unloaded = _reach(wmap, working, anywhere) & _reach(wmap, working, anywhere, reverse=True)
    for kind in (CellKind.CHARGER, CellKind.PARKING, CellKind.PACKING, CellKind.QUEUE):
        for cell in wmap.cells_of(kind):
            if cell not in unloaded:
                problems.append(places.cell(cell, f"{kind.name.lower()} cell {cell} is unreachable from the stations (or has no way back)"))
    for i, st in enumerate(wmap.stations):
        if st.working not in both:
            problems.append(places.station(i, f"station {st.id!r}: working cell {st.working} cannot be reached and left by a loaded robot"))
    return problems


def _incoming(wmap: WarehouseMap, cell: Cell) -> Iterable[tuple[Heading, Cell]]:
    for heading in Heading:
        dx, dy = heading.step
        prev = Cell(cell.x - dx, cell.y - dy)
        if wmap.traversable(prev) and wmap.may_leave(prev, heading):
            yield heading, prev


# --- writing --------------------------------------------------------------------------

def layout_text(wmap: WarehouseMap) -> str:
    arrows = {h: s for s, h in ONE_WAY_SYMBOLS.items()}
    rows = []
    for y in range(wmap.height):
        row = []
        for x in range(wmap.width):
            cell = Cell(x, y)
            row.append(arrows[wmap.one_way[cell]] if cell in wmap.one_way else wmap.kind(cell).value)
        rows.append("".join(row))
    return "\n".join(rows) + "\n"


def dump_map(wmap: WarehouseMap) -> str:
    """The map as file text; parse_map(dump_map(m)) rebuilds an equal map."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = [f"name = {q(wmap.name)}"]
    if wmap.description:
        out.append(f"description = {q(wmap.description)}")
    out += [f"pitch = {wmap.pitch}", f"qr_prefix = {q(wmap.qr_prefix)}", "layout = '''", layout_text(wmap) + "'''", ""]
    for st in wmap.stations:
        queue = ", ".join(f"[{c.x}, {c.y}]" for c in st.queue)
        out += [
            "[[stations]]",
            f"id = {q(st.id)}",
            f"kind = {q(st.kind.value)}",
            f"working = [{st.working.x}, {st.working.y}]",
            f"queue = [{queue}]",
            f"operator_side = {q(st.operator_side.name.lower())}",
            "",
        ]
    for cell, qr in wmap.qr_overrides.items():
        out += ["[[qr_overrides]]", f"cell = [{cell.x}, {cell.y}]", f"id = {q(qr)}", ""]
    return "\n".join(out)
