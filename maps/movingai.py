"""Import of MovingAI `.map` files (the standard MAPF benchmark grids) as plain floors.

Benchmark grids have no stations, chargers or shelves: every free cell becomes an aisle
cell and every obstacle a blocked one. Such a map is for routing benchmarks only, so
it skips the warehouse checks that load_map applies.
Format: https://movingai.com/benchmarks/formats.html
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maps.loader import MapError, MapProblem
from maps.model import KIND_CODES, CellKind, WarehouseMap

#: Symbols a robot may stand on; every other symbol is an obstacle.
_FREE = set(".GS")
_OBSTACLES = set("@OTW")


def load_movingai(path: str | Path) -> WarehouseMap:
    path = Path(path)
    src = str(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MapError([MapProblem(src, 0, 0, f"cannot read MovingAI map: {exc}")]) from None
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "map":
        key, _, value = lines[i].partition(" ")
        header[key.strip()] = value.strip()
        i += 1
    if i == len(lines):
        raise MapError([MapProblem(src, 1, 1, "no 'map' line: not a MovingAI map file")])
    try:
        height, width = int(header["height"]), int(header["width"])
    except (KeyError, ValueError):
        raise MapError([MapProblem(src, 1, 1, "header needs integer 'height' and 'width' lines")]) from None
    if height < 1 or width < 1:
        raise MapError([MapProblem(src, 1, 1, f"height and width must be positive, got {height} x {width}")])
    rows = lines[i + 1 : i + 1 + height]
    problems = []
    if len(rows) != height:
        problems.append(MapProblem(src, i + 2 + len(rows), 1, f"expected {height} rows, found {len(rows)}"))
    kinds = np.full((height, width), KIND_CODES[CellKind.BLOCKED], dtype=np.uint8)
    for y, row in enumerate(rows):
        if len(row) != width:
            problems.append(MapProblem(src, i + 2 + y, 1, f"row has {len(row)} cells, expected {width}"))
        for x, symbol in enumerate(row[:width]):
            if symbol in _FREE:
                kinds[y, x] = KIND_CODES[CellKind.AISLE]
            elif symbol not in _OBSTACLES:
                problems.append(MapProblem(src, i + 2 + y, x + 1, f"unknown MovingAI symbol {symbol!r}"))
    if problems:
        raise MapError(problems)
    return WarehouseMap(name=path.stem, width=width, height=height, pitch=1.0, kinds=kinds, source=src)
