"""Executing committed plans through the reservation table, one unit-time step at a time.

This is how plans meet robots in simulation: each step every robot that is not delayed
moves onto the next cell the table has granted it, and reports the cell at the end of
the step (as a robot reports a QR code read after arriving). Because reports come only
after the move, a robot can never enter a cell in the step its occupant leaves it.
Used by the one-shot benchmark (planned with following, executed without) and by the
property tests that delay robots at random.
"""

from __future__ import annotations

from typing import Callable, Hashable

from fleet.traffic.reservations import ReservationTable
from maps.model import Cell


class Deadlock(RuntimeError):
    """No robot could move although none was delayed and some still had a route."""


def execute(
    table: ReservationTable,
    delayed: Callable[[Hashable, int], bool] = lambda robot, step: False,
    max_steps: int = 100_000,
) -> list[dict[Hashable, Cell]]:
    """Run the committed routes to their end, or for `max_steps`; returns where each robot
    stood at each step. `delayed(robot, step)` says whether a robot sits out a step
    (late, slow, stopped). Raises Deadlock when nobody is delayed and nobody can move."""
    robots = table.robots()
    history = [{r: table.position(r) for r in robots}]
    # Only a robot that was delayed, or whose awaited cell has just been handed back,
    # can be granted anything new: a visit reaches the head of its cell's queue only
    # when the visit before it leaves. Trying every robot every step was most of the
    # work in a congested plan.
    ready = [r for r in robots if not table.finished(r)]
    waiting: dict[Cell, list[Hashable]] = {}
    for step in range(max_steps):
        if not ready and not waiting:
            return history
        moved: dict[Hashable, Cell] = {}
        delays = []
        for robot in ready:
            if delayed(robot, step):
                delays.append(robot)
                continue
            table.grant(robot, horizon=1)
            held = table.held(robot)
            if len(held) > 1:
                moved[robot] = held[1]
            else:
                waiting.setdefault(table.waiting_for(robot), []).append(robot)
        if not moved and not delays:
            stuck = {r: table.position(r) for r in robots if not table.finished(r)}
            raise Deadlock(f"no robot can move at step {step}; waiting: {stuck}")
        ready = delays
        for robot, cell in moved.items():
            for freed in table.reached(robot, cell):
                ready += waiting.pop(freed, [])
            if not table.finished(robot):
                ready.append(robot)
        positions = dict(history[-1])
        positions.update(moved)
        history.append(positions)
    return history
