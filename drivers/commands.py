"""What the fleet can ask of a robot, independent of the wire.

These are the wire-format definitions shared by fleet/ and firmware_emulator/: the VDA
5050 and serial drivers translate them to and from their own messages, and the emulator's
firmware interface accepts them directly. Nothing here knows how a robot decides anything.

A job is a path through the grid. Its first step is the cell the robot stands on. Each
later step is either the next adjacent cell (the robot turns in place to face it, then
drives forward) or the same cell again (the robot stays, e.g. to turn or act). A step's
`heading`, if given, is the heading to turn to once in that cell; its actions run there,
in order, after the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

from maps.model import Cell, Heading


class ActionKind(str, Enum):
    LIFT = "lift"  # raise the turntable under a shelf (VDA 5050 'pick')
    LOWER = "lower"  # set the shelf down (VDA 5050 'drop')
    START_CHARGING = "start_charging"
    STOP_CHARGING = "stop_charging"
    WAIT = "wait"  # stay for `duration` seconds


@dataclass(frozen=True)
class CellAction:
    action_id: str
    kind: ActionKind
    shelf_id: str | None = None  # LIFT/LOWER: the shelf expected (VDA 5050 loadId)
    duration: float = 0.0  # WAIT: seconds


@dataclass(frozen=True)
class Step:
    cell: Cell
    heading: Heading | None = None
    actions: tuple[CellAction, ...] = ()


@dataclass(frozen=True)
class Job:
    job_id: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"job {self.job_id!r} has no steps")
        check_path(self.steps, f"job {self.job_id!r}")


def check_path(steps: Sequence[Step], label: str, start: Cell | None = None) -> None:
    """Raise ValueError unless each step is the previous cell or adjacent to it."""
    prev = start
    for i, step in enumerate(steps):
        if prev is not None and abs(step.cell.x - prev.x) + abs(step.cell.y - prev.y) > 1:
            raise ValueError(f"{label}: step {i} at {step.cell} is not adjacent to {prev}")
        prev = step.cell


class InstantKind(str, Enum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"  # drop the job; stop at the next cell centre
    STOP = "stop"  # emergency stop: halt now; needs RESET
    RESET = "reset"  # clear an emergency stop and errors that allow it
    INIT_POSITION = "init_position"  # tell the robot where it stands
    STATUS = "status"  # ask for a status report now


@dataclass(frozen=True)
class InstantCommand:
    kind: InstantKind
    cell: Cell | None = None  # INIT_POSITION
    heading: Heading | None = None  # INIT_POSITION
    command_id: str = field(default="")
