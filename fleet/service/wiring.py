"""Assembles a runtime from the settings: the map, the robots' link, traffic and motion
control, the work that hands out errands, the store.

Today the robots are emulated in-process (firmware_emulator over drivers.inprocess) on a
simulated clock paced to wall time; the VDA 5050 and serial links plug in here once their
master sides land, and the scheduler replaces ShelfMoves as the runtime's `Work`.
"""

from __future__ import annotations

from pathlib import Path

from fleet.service.config import Settings
from fleet.service.metrics import Metrics
from fleet.service.runtime import CountingLink, Runtime
from fleet.service.store import Store
from maps import load_map, shipped_map
from maps.model import WarehouseMap


def load_warehouse_map(name: str) -> WarehouseMap:
    """A shipped map by name, or a map file by path. Raises MapError or FileNotFoundError."""
    if name.endswith(".toml") or Path(name).exists():
        return load_map(name)
    return shipped_map(name)


def emulated_runtime(settings: Settings, store: Store, wmap: WarehouseMap | None = None) -> Runtime:
    """The fleet with `settings.robots.emulated` emulated robots moving shelves."""
    from drivers.inprocess import InProcessLink
    from firmware_emulator.placement import populate
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock
    from fleet.motion import MotionControl
    from fleet.traffic.control import TrafficControl
    from fleet.workloads import ShelfMoves, shelves_on

    wmap = wmap or load_warehouse_map(settings.map.name)
    seed = settings.robots.seed
    clock = SimulatedClock()
    world = World(wmap, clock, seed=seed)
    metrics = Metrics()
    motion = MotionControl(CountingLink(InProcessLink(world), metrics), TrafficControl(wmap, rotation=True, seed=seed))
    for robot_id in populate(world, settings.robots.emulated):
        unit = world.robot(robot_id)
        motion.add_robot(robot_id, unit.cell, unit.heading)
    shelf_at = shelves_on(wmap, world.stored_shelf_at)
    work = ShelfMoves(wmap, motion, shelf_at, seed=seed) if settings.robots.shelf_moves else None
    return Runtime(wmap, clock, motion, store, metrics, work=work,
                   shelves={shelf: (cell.x, cell.y) for cell, shelf in shelf_at.items()},
                   cycle_s=settings.runtime.cycle_s, speed=settings.runtime.speed, thresholds=settings.thresholds)
