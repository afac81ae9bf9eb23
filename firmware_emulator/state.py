"""The layout of the world's robot table: one record per robot, shared with compiled code.

The World keeps every robot's true state and its physical numbers in one numpy record
array, so that the compiled physics step (firmware_emulator/physics.py) receives the
whole fleet as a single argument and reads a robot's fields next to each other. The
World exposes each field as a numpy view (`world.x`, `world.v`, ...), which is what the
firmware and tests index.
"""

from __future__ import annotations

import math

import numpy as np

#: Motion modes of a robot.
IDLE, DRIVING, TURNING = 0, 1, 2
#: Cells of padding around the world's grids: everything outside the map is a wall.
PAD = 2

#: Field name: (type, value of a fresh slot).
ROBOT_FIELDS: dict[str, tuple[type, float]] = {
    # true state
    "x": (float, 0.0), "y": (float, 0.0), "theta": (float, 0.0), "v": (float, 0.0),
    "ux": (float, 1.0), "uy": (float, 0.0), "goal": (float, 0.0), "run": (float, 0.0),
    "turn_left": (float, 0.0), "since_code": (float, 0.0), "soc": (float, 1.0), "factor": (float, 1.0),
    "mode": (np.int8, IDLE), "hold": (bool, False), "charging": (bool, False), "lifting": (bool, False),
    "laser_stopped": (bool, False), "carried": (np.int64, -1), "pct": (np.int64, 100),
    "phantom_on": (bool, False), "phantom_x": (float, 0.0), "phantom_y": (float, 0.0),
    "next_status": (float, 0.0),
    # from the profile
    "vmax": (float, 0.0), "vmax_loaded": (float, 0.0), "accel": (float, 1.0), "decel": (float, 1.0),
    "emergency": (float, 1.0), "omega": (float, 1.0), "half_len": (float, 0.0), "half_wid": (float, 0.0),
    "laser_range": (float, 0.0), "standoff": (float, 0.0), "side_margin": (float, 0.0),
    "max_no_code": (float, math.inf), "capacity_j": (float, 1.0), "idle_w": (float, 0.0), "drive_w": (float, 0.0),
    "drive_loaded_w": (float, 0.0), "rotate_w": (float, 0.0), "lift_w": (float, 0.0), "charge_w": (float, 0.0),
    "counter_rot": (bool, True), "status_interval": (float, 1.0),
}

ROBOT_DTYPE = np.dtype([(name, kind) for name, (kind, _) in ROBOT_FIELDS.items()], align=True)


def robot_table(capacity: int, old: np.ndarray | None = None) -> np.ndarray:
    """A table of `capacity` fresh slots, starting with the records of `old`."""
    table = np.empty(capacity, dtype=ROBOT_DTYPE)
    for name, (_, default) in ROBOT_FIELDS.items():
        table[name] = default
    if old is not None:
        table[: len(old)] = old
    return table
