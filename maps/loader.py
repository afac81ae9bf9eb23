"""Reading, validating and writing map files (format: docs/map-format.md).

A map file is TOML: metadata keys plus a `layout` string with one character per cell.
Every problem found is reported with the file, line and column it concerns, and all
problems are reported at once, so whoever edits a map fixes it in one pass.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from maps.model import (
    KIND_CODES,
    KINDS_BY_CODE,
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
        self.station_lines = self._table_lines("stations")
        self.override_lines = self._table_lines("qr_overrides")

    def _table_lines(self, name: str) -> list[int]:
        """Line of each `[[name]]` header (spaces and a trailing comment allowed, as in TOML)."""
        header = re.compile(rf"\s*\[\[\s*{name}\s*\]\]\s*(#.*)?$")
        return [i + 1 for i, ln in enumerate(self.lines) if header.match(ln)]

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


_UNKNOWN = 255
#: Kind code of every symbol by code point (ASCII range); _UNKNOWN for anything else.
_SYMBOL_CODES = np.full(256, _UNKNOWN, dtype=np.uint8)
for _symbol, _kind in SYMBOLS.items():
    _SYMBOL_CODES[ord(_symbol)] = KIND_CODES[_kind]

_KNOWN_KEYS = {"name", "description", "pitch", "qr_prefix", "layout", "stations", "qr_overrides"}
_STATION_KEYS = {"id", "kind", "working", "queue", "operator_side"}


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
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(places.at(places.key_line("description"), "'description' must be a string"))
        description = ""
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
    # One code point per cell; symbols are looked up a row at a time (large floors).
    chars = np.full((height, width), ord(CellKind.BLOCKED.value), dtype=np.uint32)
    for y, row in enumerate(rows):
        if len(row) != width:
            problems.append(places.cell(Cell(min(len(row), width), y), f"ragged row: {len(row)} cells, but the first row has {width}"))
        points = np.frombuffer(row[:width].encode("utf-32-le"), dtype=np.uint32)
        for x in np.flatnonzero(_SYMBOL_CODES[np.minimum(points, 255)] == _UNKNOWN).tolist():
            known = " ".join(sorted(SYMBOLS))
            problems.append(places.cell(Cell(x, y), f"unknown symbol {row[x]!r}; known symbols: {known}"))
        chars[y, : len(points)] = points
    codes = _SYMBOL_CODES[np.minimum(chars, 255)]
    kinds = np.where(codes == _UNKNOWN, KIND_CODES[CellKind.BLOCKED], codes).astype(np.uint8)
    arrows = np.isin(chars, [ord(s) for s in ONE_WAY_SYMBOLS])
    one_way = {
        Cell(x, y): ONE_WAY_SYMBOLS[chr(chars[y, x])] for y, x in zip(*(a.tolist() for a in np.nonzero(arrows)))
    }

    stations = _stations(data.get("stations", []), places, problems, width, height)
    overrides = _overrides(data.get("qr_overrides", []), places, problems, width, height)
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
        description=description,
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


def _station_lines(entry: dict, width: int, height: int) -> list[tuple[Cell, tuple[Cell, ...]]] | str:
    """(working cell, its queue) pairs from `working`/`queue`, or the reason they are not.

    One working cell: `working = [x, y]`, `queue = [[x, y], ...]`. Several:
    `working = [[x, y], [x, y]]` and `queue` one list of cells per working cell."""
    working_raw, queue_raw = entry.get("working"), entry.get("queue", [])
    several = isinstance(working_raw, list) and bool(working_raw) and all(isinstance(w, list) for w in working_raw)
    if not several:
        working_raw, queue_raw = [working_raw], [queue_raw]
    elif (not isinstance(queue_raw, list) or len(queue_raw) != len(working_raw)
          or not all(isinstance(q, list) and all(isinstance(c, list) for c in q) for q in queue_raw)):
        return (f"with {len(working_raw)} working cells 'queue' must be a list of {len(working_raw)} queues "
                f"(one list of cells per working cell), got {queue_raw!r}")
    lines = []
    for n, (w, queue) in enumerate(zip(working_raw, queue_raw)):
        which = f" #{n + 1}" if several else ""
        working = _as_cell(w, width, height)
        if isinstance(working, str):
            return f"'working'{which}: {working}"
        if not isinstance(queue, list):
            return f"'queue'{which} must be a list of cells"
        cells = [_as_cell(q, width, height) for q in queue]
        if problem := next((c for c in cells if isinstance(c, str)), None):
            return f"'queue'{which}: {problem}"
        lines.append((working, tuple(cells)))
    return lines


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
        unknown = sorted(set(entry) - _STATION_KEYS)
        if unknown:
            problems.append(places.station(i, f"{label}: unknown key(s) {unknown}; expected {sorted(_STATION_KEYS)}"))
            continue
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
        lines = _station_lines(entry, width, height)
        if isinstance(lines, str):
            problems.append(places.station(i, f"{label}: {lines}"))
            continue
        stations.append(Station(sid, kind, tuple(w for w, _ in lines), tuple(q for _, q in lines), side))
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

class _Moves:
    """Which cells a robot may leave in which heading, as whole-grid boolean masks.

    Reachability over a large floor is a flood fill of whole arrays, one step per
    round, instead of a walk over every cell in Python.
    """

    def __init__(self, wmap: WarehouseMap) -> None:
        self.traversable = wmap.kinds != KIND_CODES[CellKind.BLOCKED]
        arrows = {h: np.zeros_like(self.traversable) for h in Heading}
        for cell, heading in wmap.one_way.items():
            arrows[heading][cell.y, cell.x] = True
        one_way = np.logical_or.reduce(list(arrows.values()))
        self.leave = {
            h: self.traversable & self.back(self.traversable, h) & (~one_way | arrows[h]) for h in Heading
        }

    @staticmethod
    def ahead(mask: np.ndarray, heading: Heading) -> np.ndarray:
        """Each cell's value moved one step in `heading` (falling off the edge)."""
        dx, dy = heading.step
        out = np.zeros_like(mask)
        h, w = mask.shape
        out[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = mask[max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
        return out

    @staticmethod
    def back(mask: np.ndarray, heading: Heading) -> np.ndarray:
        """Each cell gets the value of its neighbour in `heading` (False off the edge)."""
        return _Moves.ahead(mask, heading.opposite())

    def into(self, mask: np.ndarray) -> np.ndarray:
        """Cells one legal move away from some cell of `mask`."""
        return np.logical_or.reduce([self.ahead(mask & self.leave[h], h) for h in Heading])

    def out_to(self, mask: np.ndarray) -> np.ndarray:
        """Cells with one legal move into some cell of `mask`."""
        return np.logical_or.reduce([self.leave[h] & self.back(mask, h) for h in Heading])

    def reach(self, starts: Iterable[Cell], allowed: np.ndarray, reverse: bool = False) -> np.ndarray:
        """Cells reachable from `starts` (or that can reach them, if reverse) through `allowed` cells."""
        seen = np.zeros_like(allowed)
        for cell in starts:
            seen[cell.y, cell.x] = allowed[cell.y, cell.x]
        frontier = seen
        step = self.out_to if reverse else self.into
        while frontier.any():
            frontier = step(frontier) & allowed & ~seen
            seen |= frontier
        return seen


def _validate(wmap: WarehouseMap, places: _Places) -> list[MapProblem]:
    problems: list[MapProblem] = []
    if not wmap.stations:
        problems.append(places.at(1, "the map has no stations: add at least one [[stations]] table"))

    # Stations: working cells, each with an ordered, connected queue that ends beside it.
    claimed: dict[Cell, str] = {}
    for i, st in enumerate(wmap.stations):
        label = f"station {st.id!r}"
        for cell in st.cells:
            if cell in claimed:
                problems.append(places.station(i, f"{label}: cell {cell} already belongs to station {claimed[cell]!r}"))
            claimed[cell] = st.id
        for working, queue in zip(st.working, st.queues):
            if wmap.kind(working) is not CellKind.WORKING:
                problems.append(places.station(i, f"{label}: working cell {working} is {wmap.kind(working).name.lower()}, not a 'W' cell"))
            path = (*queue, working)
            for j, cell in enumerate(queue):
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
    for cell in _cells(wmap.kinds != KIND_CODES[CellKind.BLOCKED]):
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
    working = [c for s in wmap.stations for c in s.working]
    moves = _Moves(wmap)
    storage = wmap.kinds == KIND_CODES[CellKind.STORAGE]
    free = moves.traversable & ~storage
    both = moves.reach(working, free) & moves.reach(working, free, reverse=True)
    served = moves.out_to(both) & moves.into(both)
    for cell in _cells(storage & ~served):
        problems.append(places.cell(cell, f"storage cell {cell} cannot be reached from any station by a loaded robot through free aisles"))
    unloaded = moves.reach(working, moves.traversable) & moves.reach(working, moves.traversable, reverse=True)
    for kind in (CellKind.CHARGER, CellKind.PARKING, CellKind.PACKING, CellKind.QUEUE):
        for cell in _cells((wmap.kinds == KIND_CODES[kind]) & ~unloaded):
            problems.append(places.cell(cell, f"{kind.name.lower()} cell {cell} is unreachable from the stations (or has no way back)"))
    for i, st in enumerate(wmap.stations):
        for cell in st.working:
            if not both[cell.y, cell.x]:
                problems.append(places.station(i, f"station {st.id!r}: working cell {cell} cannot be reached and left by a loaded robot"))
    return problems


def _cells(mask: np.ndarray) -> list[Cell]:
    ys, xs = np.nonzero(mask)
    return [Cell(x, y) for y, x in zip(ys.tolist(), xs.tolist())]


# --- writing --------------------------------------------------------------------------

def layout_text(wmap: WarehouseMap) -> str:
    symbols = np.array([kind.value for kind in KINDS_BY_CODE])[wmap.kinds]
    arrows = {h: s for s, h in ONE_WAY_SYMBOLS.items()}
    for cell, heading in wmap.one_way.items():
        symbols[cell.y, cell.x] = arrows[heading]
    return "".join("".join(row) + "\n" for row in symbols.tolist())


def dump_map(wmap: WarehouseMap) -> str:
    """The map as file text; parse_map(dump_map(m)) rebuilds an equal map."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = [f"name = {q(wmap.name)}"]
    if wmap.description:
        out.append(f"description = {q(wmap.description)}")
    out += [f"pitch = {wmap.pitch}", f"qr_prefix = {q(wmap.qr_prefix)}", "layout = '''", layout_text(wmap) + "'''", ""]
    def listed(cells: tuple[Cell, ...]) -> str:
        return "[" + ", ".join(f"[{c.x}, {c.y}]" for c in cells) + "]"

    for st in wmap.stations:
        one = len(st.working) == 1
        out += [
            "[[stations]]",
            f"id = {q(st.id)}",
            f"kind = {q(st.kind.value)}",
            f"working = [{st.working[0].x}, {st.working[0].y}]" if one else f"working = {listed(st.working)}",
            f"queue = {listed(st.queues[0])}" if one else "queue = [" + ", ".join(listed(c) for c in st.queues) + "]",
            f"operator_side = {q(st.operator_side.name.lower())}",
            "",
        ]
    for cell, qr in wmap.qr_overrides.items():
        out += ["[[qr_overrides]]", f"cell = [{cell.x}, {cell.y}]", f"id = {q(qr)}", ""]
    return "\n".join(out)
