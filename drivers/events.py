"""What robots tell the fleet, independent of the wire.

Every event carries the robot id and `time`: the fleet clock's time when the link
received it (not the robot's clock), so events from one robot are ordered as they
arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from drivers.commands import ActionKind
from maps.model import Cell, Heading


class Severity(str, Enum):
    WARNING = "warning"  # the robot carries on or can be told to
    FATAL = "fatal"  # the robot cannot carry on without help


@dataclass(frozen=True)
class RobotEvent:
    robot_id: str
    time: float


@dataclass(frozen=True)
class CellReached(RobotEvent):
    """The robot read the QR code of `cell`: the cells behind it may be handed back."""

    cell: Cell
    heading: Heading
    job_id: str | None
    step_index: int | None


@dataclass(frozen=True)
class ActionFinished(RobotEvent):
    job_id: str | None
    action_id: str
    kind: ActionKind


@dataclass(frozen=True)
class ActionFailed(RobotEvent):
    job_id: str | None
    action_id: str
    kind: ActionKind
    reason: str


@dataclass(frozen=True)
class JobFinished(RobotEvent):
    job_id: str


@dataclass(frozen=True)
class JobRejected(RobotEvent):
    """The robot refused a job or an extension; `reason` is the robot's own words."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class ErrorRaised(RobotEvent):
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class ErrorCleared(RobotEvent):
    code: str


@dataclass(frozen=True)
class BatteryReport(RobotEvent):
    charge: float  # state of charge, 0..1
    charging: bool


@dataclass(frozen=True)
class LoadChanged(RobotEvent):
    shelf_id: str | None  # None: the robot carries nothing
    weight_kg: float


@dataclass(frozen=True)
class ConnectionChanged(RobotEvent):
    online: bool
    reason: str = ""


@dataclass(frozen=True)
class StatusReport(RobotEvent):
    """A periodic snapshot; the fleet uses it to localise and to show the robot."""

    cell: Cell | None  # last QR code read, None if the robot does not know where it is
    heading: Heading | None
    x: float
    y: float
    theta: float
    speed: float
    driving: bool
    paused: bool
    charge: float
    shelf_id: str | None
    job_id: str | None
    errors: tuple[str, ...] = ()
