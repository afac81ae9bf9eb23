"""Small floors and job builders shared by the emulator tests (real World, simulated clock)."""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

from drivers.commands import ActionKind, CellAction, Job, Step
from drivers.events import RobotEvent
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from maps import Cell, Heading, parse_map

#: An open 12 x 6 floor inside a wall: parking at (1, 1), storage cells (3..8, 4), a
#: charger at (12, 6) and a pick station's working cell at (1, 6).
OPEN_FLOOR = """
##############
#P...........#
#............#
#............#
#..SSSSSS....#
#............#
#W..........C#
##############
"""


class Bench:
    """A world on a simulated clock, with every event the robots send."""

    def __init__(self, layout: str = OPEN_FLOOR, dt: float = 0.05, seed: int = 0, **world_options) -> None:
        rows = layout.strip().splitlines()
        # the map format wants a station: every 'W' becomes one, without a queue
        stations = "".join(
            f"[[stations]]\nid = 'st-{x}-{y}'\nkind = 'pick'\nworking = [{x}, {y}]\nqueue = []\noperator_side = 'south'\n"
            for y, row in enumerate(rows) for x, ch in enumerate(row) if ch == "W")
        self.map = parse_map(f"name = 'bench'\npitch = 1.0\nlayout = '''\n{layout.strip()}\n'''\n{stations}")
        self.clock = SimulatedClock()
        self.world = World(self.map, self.clock, dt=dt, seed=seed, **world_options)
        self.events: list[RobotEvent] = []
        self.world.subscribe(self.events.append)

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run_until(self, done: Callable[[], bool], limit: float = 120.0) -> float:
        """Advance step by step until `done()`; returns the time. Fails after `limit` seconds."""
        end = self.clock.now() + limit
        while not done():
            if self.clock.now() >= end:
                raise AssertionError(f"condition not met within {limit} s")
            self.clock.advance(self.world.dt)
        return self.clock.now()

    def of(self, kind: type, robot_id: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (robot_id is None or e.robot_id == robot_id)]

    def last(self, kind: type, robot_id: str | None = None):
        found = self.of(kind, robot_id)
        return found[-1] if found else None


def line(x0: int, y0: int, x1: int, y1: int) -> list[Cell]:
    """Cells from (x0, y0) to (x1, y1) along one row or column, both ends included."""
    if x0 != x1 and y0 != y1:
        raise ValueError("not a straight line")
    n = max(abs(x1 - x0), abs(y1 - y0))
    sx, sy = (x1 > x0) - (x1 < x0), (y1 > y0) - (y1 < y0)
    return [Cell(x0 + k * sx, y0 + k * sy) for k in range(n + 1)]


def job(job_id: str, cells: Sequence[Cell], actions: dict[int, Iterable[CellAction]] | None = None,
        headings: dict[int, Heading] | None = None) -> Job:
    actions = actions or {}
    headings = headings or {}
    return Job(job_id, tuple(Step(c, headings.get(i), tuple(actions.get(i, ()))) for i, c in enumerate(cells)))


def act(kind: ActionKind, action_id: str = "a", **kw) -> CellAction:
    return CellAction(action_id, kind, **kw)


def trapezoid_time(distance: float, v: float, a: float, d: float) -> float:
    """Closed-form time of a rest-to-rest run with acceleration a, deceleration d, top speed v."""
    if v * v / (2 * a) + v * v / (2 * d) <= distance:
        return v / a + v / d + (distance - v * v / (2 * a) - v * v / (2 * d)) / v
    peak = math.sqrt(2 * a * d * distance / (a + d))
    return peak / a + peak / d
