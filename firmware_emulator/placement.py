"""Where emulated robots start: parking cells first, then free aisle cells.

Start-up mirrors a shift start in the warehouse: robots stand on their parking cells;
when there are more robots than parking cells the rest stand in the aisles, never on
storage cells (the shelves' homes), stations or chargers, which the fleet expects free.
"""

from __future__ import annotations

from firmware_emulator.profile import DEFAULT_PROFILE, RobotProfile
from firmware_emulator.world import World
from maps.model import Cell, CellKind, Heading, WarehouseMap


def start_cells(wmap: WarehouseMap, count: int) -> list[Cell]:
    if count < 0:
        raise ValueError(f"robot count must be >= 0, got {count}")
    cells = wmap.cells_of(CellKind.PARKING) + wmap.cells_of(CellKind.AISLE)
    if count > len(cells):
        raise ValueError(f"map {wmap.name!r} has room for {len(cells)} robots "
                         f"({wmap.count(CellKind.PARKING)} parking + {wmap.count(CellKind.AISLE)} aisle cells), not {count}")
    return cells[:count]


def populate(world: World, count: int, profile: RobotProfile = DEFAULT_PROFILE, prefix: str = "robot-") -> list[str]:
    """Add `count` robots named prefix1, prefix2, ... on their start cells, facing east."""
    width = len(str(count))
    ids = []
    for k, cell in enumerate(start_cells(world.map, count), start=1):
        robot_id = f"{prefix}{k:0{width}d}"
        world.add_robot(robot_id, cell, Heading.EAST, profile)
        ids.append(robot_id)
    return ids
