"""Small hand-drawn floors for the traffic tests: '#' blocked, 'S' storage (where shelves
stand), 'W' and 'Q' a station's working and queue cells (the station itself is passed in),
anything else an aisle, and '<', '>', '^', 'v' one-way aisle cells."""

from __future__ import annotations

import numpy as np

from maps.model import KIND_CODES, ONE_WAY_SYMBOLS, Cell, CellKind, Station, WarehouseMap


_KINDS = {"#": CellKind.BLOCKED, "S": CellKind.STORAGE, "W": CellKind.WORKING, "Q": CellKind.QUEUE}


def floor(*rows: str, name: str = "test", stations: tuple[Station, ...] = ()) -> WarehouseMap:
    kinds = np.array(
        [[KIND_CODES[_KINDS.get(ch, CellKind.AISLE)] for ch in row] for row in rows],
        dtype=np.uint8,
    )
    one_way = {Cell(x, y): ONE_WAY_SYMBOLS[ch] for y, row in enumerate(rows) for x, ch in enumerate(row)
               if ch in ONE_WAY_SYMBOLS}
    return WarehouseMap(name=name, width=len(rows[0]), height=len(rows), pitch=1.0, kinds=kinds, one_way=one_way,
                        stations=stations)


#: Two rows of shelf blocks between three aisles: lifelong runs of a dozen robots meet
#: head-on, cross and queue here within a hundred steps.
WAREHOUSE = floor(
    "...........",
    ".###.###.#.",
    "...........",
    ".###.###.#.",
    "...........",
)
