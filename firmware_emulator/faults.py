"""Faults a test or bench injects into the emulated fleet, at a given time or at random.

Each fault is a plain record naming the robot it hits; `World.inject(fault, at=...)`
applies it. Random schedules come from a seeded generator so a failing bench run can be
replayed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np


@dataclass(frozen=True)
class CommunicationLoss:
    """The robot's radio drops: commands to it are lost and it is heard from no more, but it
    keeps executing what it already holds, as a real robot would."""

    robot_id: str
    duration: float


@dataclass(frozen=True)
class MotorStall:
    """The drive motors block: the robot stops dead and latches a fatal error that a RESET
    clears only once the stall is over."""

    robot_id: str
    duration: float


@dataclass(frozen=True)
class SlowDown:
    """Worn drive or low traction: the robot runs at `factor` of its speeds (drive and turn)
    without knowing it, which is the 'robot is late' case traffic control must survive."""

    robot_id: str
    factor: float
    duration: float


@dataclass(frozen=True)
class MissedCode:
    """The next `count` floor codes are unreadable (dirty or torn): the robot dead-reckons over them."""

    robot_id: str
    count: int = 1


@dataclass(frozen=True)
class LostLocalisation:
    """The robot no longer knows where it is: it stops, drops its job and needs initialising."""

    robot_id: str


@dataclass(frozen=True)
class BatteryDrop:
    """A cell fails: the state of charge falls by `amount` (0..1) at once."""

    robot_id: str
    amount: float


@dataclass(frozen=True)
class LaserObstacle:
    """Something (a person, a dropped box, a ghost reflection) appears `distance` metres in
    front of the robot, on its line, for `duration` seconds."""

    robot_id: str
    distance: float
    duration: float


@dataclass(frozen=True)
class Reboot:
    """The controller restarts: offline for the boot time, then up with no job and no pose."""

    robot_id: str
    boot_time: float | None = None  # None: the robot profile's boot_time


Fault = Union[CommunicationLoss, MotorStall, SlowDown, MissedCode, LostLocalisation, BatteryDrop, LaserObstacle, Reboot]
FAULT_KINDS: tuple[type, ...] = (
    CommunicationLoss, MotorStall, SlowDown, MissedCode, LostLocalisation, BatteryDrop, LaserObstacle, Reboot,
)


def check_fault(fault: object) -> None:
    """Raise ValueError for a fault that cannot happen (negative duration, factor outside (0, 1], ...)."""
    if not isinstance(fault, FAULT_KINDS):
        raise ValueError(f"not a fault: {fault!r}")
    for name in ("duration", "distance"):
        value = getattr(fault, name, None)
        if value is not None and not value >= 0:
            raise ValueError(f"{type(fault).__name__}.{name} must be >= 0, got {value}")
    if isinstance(fault, SlowDown) and not 0 < fault.factor <= 1:
        raise ValueError(f"SlowDown.factor must be in (0, 1], got {fault.factor}")
    if isinstance(fault, MissedCode) and fault.count < 1:
        raise ValueError(f"MissedCode.count must be >= 1, got {fault.count}")
    if isinstance(fault, BatteryDrop) and not 0 <= fault.amount <= 1:
        raise ValueError(f"BatteryDrop.amount must be in [0, 1], got {fault.amount}")
    if isinstance(fault, Reboot) and fault.boot_time is not None and fault.boot_time < 0:
        raise ValueError(f"Reboot.boot_time must be >= 0, got {fault.boot_time}")


def random_faults(
    robot_ids: Sequence[str],
    horizon: float,
    per_robot_hour: float,
    seed: int,
    kinds: Sequence[type] = FAULT_KINDS,
) -> list[tuple[float, Fault]]:
    """A seeded schedule: faults arrive as a Poisson process of `per_robot_hour` per robot,
    each of a kind drawn uniformly from `kinds`, with plausible sizes (documented in
    docs/emulator.md). Sorted by time."""
    if horizon < 0 or per_robot_hour < 0:
        raise ValueError("horizon and per_robot_hour must be >= 0")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {[k.__name__ for k in FAULT_KINDS]}")
    rng = np.random.default_rng(seed)
    schedule: list[tuple[float, Fault]] = []
    for robot_id in robot_ids:
        count = rng.poisson(per_robot_hour * horizon / 3600.0)
        for at in np.sort(rng.uniform(0.0, horizon, count)):
            kind = kinds[int(rng.integers(len(kinds)))]
            schedule.append((float(at), _sized(kind, robot_id, rng)))
    schedule.sort(key=lambda item: item[0])
    return schedule


def _sized(kind: type, robot_id: str, rng: np.random.Generator) -> Fault:
    if kind is CommunicationLoss:
        return CommunicationLoss(robot_id, float(rng.uniform(1.0, 30.0)))
    if kind is MotorStall:
        return MotorStall(robot_id, float(rng.uniform(1.0, 10.0)))
    if kind is SlowDown:
        return SlowDown(robot_id, float(rng.uniform(0.3, 0.8)), float(rng.uniform(10.0, 120.0)))
    if kind is MissedCode:
        return MissedCode(robot_id, 1)
    if kind is LostLocalisation:
        return LostLocalisation(robot_id)
    if kind is BatteryDrop:
        return BatteryDrop(robot_id, float(rng.uniform(0.05, 0.2)))
    if kind is LaserObstacle:
        return LaserObstacle(robot_id, float(rng.uniform(0.3, 1.5)), float(rng.uniform(1.0, 10.0)))
    return Reboot(robot_id)
