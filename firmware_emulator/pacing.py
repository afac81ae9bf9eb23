"""The wall-time loop of the wire front ends (serial lines, MQTT vehicles).

A front end that serves real ports steps the World from a thread of its own on a wall
clock: it wakes twice per physics step, catches the world up under its lock
(`step_to_now`, which each front end defines: the MQTT one also publishes the states
that fell due) and stops at a given clock reading or when asked to.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from firmware_emulator.world import World


class PacedFloor:
    """Mixin: `run()` for a front end with a `world` and a `step_to_now()`."""

    world: "World"
    step_to_now: Callable[[], None]  # catch the world up with its clock, under the front end's lock

    def run(self, until: float = float("inf"), stop: threading.Event | None = None) -> None:
        """Step the world in wall time until its clock reads `until` or `stop` is set."""
        stop = stop or threading.Event()
        while self.world.now() < until and not stop.wait(self.world.dt / 2):
            self.step_to_now()
