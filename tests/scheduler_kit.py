"""A small warehouse for the scheduler's tests: real traffic control, real motion control,
emulated robots over the in-process link.

The floor keeps every shelf in an alcove (walls left, right and behind), so no route
between two other cells passes under a stored shelf: the workflows are tested on their
own, whatever traffic control does with loaded robots elsewhere.
"""

from __future__ import annotations

from typing import Callable

from drivers.inprocess import InProcessLink
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from fleet.domain import Catalogue, Inventory, InventoryShelf, OrderShelf, Sku
from fleet.motion import MotionControl
from fleet.scheduler.terminals import PickPresentation
from fleet.scheduler.workflows import Scheduler, SchedulerConfig
from fleet.traffic.control import TrafficControl
from maps.loader import parse_map
from maps.model import Cell, CellKind, Heading, WarehouseMap

#: The west wall's pick ports: two ports (rows 2-7: queue, queue, working, twice), or one
#: port with two working cells side by side (rows 4 and 5), the second queue mirrored.
_PICK_PORTS = ('''
[[stations]]
id = "pick-1"
kind = "pick"
working = [0, 4]
queue = [[0, 2], [0, 3]]
operator_side = "west"

[[stations]]
id = "pick-2"
kind = "pick"
working = [0, 7]
queue = [[0, 5], [0, 6]]
operator_side = "west"
''', '''
[[stations]]
id = "pick-1"
kind = "pick"
working = [[0, 4], [0, 5]]
queue = [[[0, 2], [0, 3]], [[0, 7], [0, 6]]]
operator_side = "west"
''')


def alcoves(pairs: int = 8, twin: bool = False) -> str:
    """The alcove floor as map TOML: `pairs` alcoves per storage row (top and bottom), two
    pick ports on the west wall (`twin`: one pick port with two working cells), a stow
    port on the east wall, a packing alcove top right."""
    width = 2 * pairs + 1
    inner = width - 2
    top = "#" + "S#" * (pairs - 1) + "K#"
    bottom = "#" + "S#" * pairs
    middle = "P.P.P.P.C.C."
    west = "QQWWQQ" if twin else "QQWQQW"
    rows = [
        "#" * width, top,
        west[0] + "." * inner + "Q",
        west[1] + "..." + middle + "." * (inner - 3 - len(middle)) + "Q",
        west[2] + "." * inner + "W",
        west[3] + "." * inner + "#",
        west[4] + "." * inner + "#",
        west[5] + "." * inner + "#",
        bottom, "#" * width,
    ]
    layout = "\n".join(rows)
    return f'''
name = "alcoves"
pitch = 1.0
layout = """
{layout}
"""
{_PICK_PORTS[twin]}
[[stations]]
id = "stow-1"
kind = "stow"
working = [{width - 1}, 4]
queue = [[{width - 1}, 2], [{width - 1}, 3]]
operator_side = "east"
'''


CATALOGUE = Catalogue([
    Sku("A", "apples", 0.5, 0.2), Sku("B", "bolts", 0.1, 0.3), Sku("C", "cups", 0.4, 0.2),
    Sku("D", "dice", 0.05, 0.01), Sku("E", "eggs", 0.3, 0.1),
])


def alcove_map(pairs: int = 8, twin: bool = False) -> WarehouseMap:
    return parse_map(alcoves(pairs, twin), f"scheduler_kit.alcoves({pairs}, twin={twin})")


class Fleet:
    """The scheduler on the alcove floor. Shelf ids are the domain's (S1..., OS1...),
    and the world is built with the same ids."""

    def __init__(self, robots: dict[str, Cell], stock: dict[str, dict[str, int]] | None = None,
                 order_shelves: int = 0, config: SchedulerConfig = SchedulerConfig(), charge: float = 1.0,
                 seed: int = 0, shelves: int | None = None, twin: bool = False) -> None:
        """`shelves`: inventory shelves at most (the storage cells beyond stay free);
        `twin`: the floor with one pick port of two working cells (`alcoves`)."""
        self.map = alcove_map(twin=twin)
        self.clock = SimulatedClock()
        homes = self.map.cells_of(CellKind.STORAGE)
        # order shelves take the bottom-left alcoves, nearest the pick ports
        bottom = sorted((c for c in homes if c.y == 8), key=lambda c: c.x)
        order_homes = bottom[:order_shelves]
        shelf_homes = [c for c in homes if c not in order_homes][:shelves]
        self.inventory = Inventory(CATALOGUE, [InventoryShelf.build(f"S{i + 1}", c) for i, c in enumerate(shelf_homes)])
        for shelf_id, contents in (stock or {}).items():
            for i, (sku, qty) in enumerate(contents.items()):
                self.inventory.put(self.inventory.shelf(shelf_id).bins[i].label, sku, qty)
        self.order_shelves = [OrderShelf.build(f"OS{i + 1}", c) for i, c in enumerate(order_homes)]
        homes_by_id = {s.id: s.home for s in self.inventory.shelves()} | {s.id: s.home for s in self.order_shelves}
        self.world = World(self.map, self.clock, seed=seed, shelves=homes_by_id)
        self.motion = MotionControl(InProcessLink(self.world), TrafficControl(self.map, rotation=True, seed=seed))
        for robot_id, cell in robots.items():
            self.world.add_robot(robot_id, cell, Heading.EAST, charge=charge)
            self.motion.add_robot(robot_id, cell, Heading.EAST)
            self.motion.robots[robot_id].charge = charge
        self.scheduler = Scheduler(self.map, self.motion, self.inventory, self.order_shelves, config)

    def run_until(self, done: Callable[[], bool], limit: float, period: float = 0.25,
                  each: Callable[[float], None] | None = None) -> float:
        """Tick until `done()` or `limit` simulated seconds; returns the time it took."""
        while not done():
            if self.clock.now() >= limit:
                raise AssertionError(f"not done by t={limit} s")
            self.clock.advance(period)
            self.scheduler.tick(self.clock.now())
            if each is not None:
                each(self.clock.now())
        return self.clock.now()

    def operate(self, now: float) -> None:
        """Operators who confirm every lit pick at once, put goods into the lit bin and
        let a stowed shelf go with its true weight."""
        for port, p in list(self.scheduler.presentations.items()):
            if isinstance(p, PickPresentation):
                self.scheduler.confirm_pick(port, now)
            elif p.lit is not None:
                self.scheduler.scan_bin(port, p.lit.bin_label, now)
            else:
                self.scheduler.depart_stow(port, p.shelf.total_weight_kg, now)
