"""Battery thresholds and the chargers: when a robot charges, where, and when it leaves.

The rules (DESIGN.md, pick step 4 and stow step 7): below `low` a robot finishes its
job and then charges at the nearest free charger, queueing if all are taken; below
`critical` it takes no new job at all; it leaves the charger when `full`, or earlier
when work is waiting and it is above `resume`. The charger bookkeeping is plain data so
the queue rule can be tested without robots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from maps.model import Cell


@dataclass(frozen=True)
class BatteryPolicy:
    critical: float = 0.15
    low: float = 0.30
    resume: float = 0.50
    full: float = 0.95

    def __post_init__(self) -> None:
        if not 0 <= self.critical <= self.low <= self.resume <= self.full <= 1:
            raise ValueError("battery thresholds must satisfy 0 <= critical <= low <= resume <= full <= 1, got "
                             f"critical={self.critical}, low={self.low}, resume={self.resume}, full={self.full}")

    def needs_charge(self, charge: float) -> bool:
        return charge < self.low

    def may_work(self, charge: float) -> bool:
        return charge > self.critical

    def may_leave(self, charge: float, work_waiting: bool) -> bool:
        return charge >= self.full or (work_waiting and charge >= self.resume)


@dataclass
class Chargers:
    """Which robot holds which charger, and who waits for one (first come, first served)."""

    cells: tuple[Cell, ...]
    holder: dict[Cell, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)

    def request(self, robot_id: str, near: Callable[[Cell], float]) -> Cell | None:
        """A charger for the robot: the nearest free one (by `near`, travel from the robot),
        or None, and the robot joins the queue."""
        if robot_id in self.waiting or robot_id in self.holder.values():
            raise ValueError(f"robot {robot_id!r} already has or waits for a charger")
        free = [c for c in self.cells if c not in self.holder]
        if self.waiting or not free:
            self.waiting.append(robot_id)
            return None
        cell = min(free, key=lambda c: (near(c), c))
        self.holder[cell] = robot_id
        return cell

    def release(self, robot_id: str) -> tuple[str, Cell] | None:
        """The robot leaves its charger (or the queue). Returns the next waiting robot and
        the charger it now holds, if one was waiting."""
        if robot_id in self.waiting:
            self.waiting.remove(robot_id)
            return None
        cell = next((c for c, r in self.holder.items() if r == robot_id), None)
        if cell is None:
            raise ValueError(f"robot {robot_id!r} holds no charger")
        del self.holder[cell]
        if not self.waiting:
            return None
        robot = self.waiting.pop(0)
        self.holder[cell] = robot
        return robot, cell

    def of(self, robot_id: str) -> Cell | None:
        return next((c for c, r in self.holder.items() if r == robot_id), None)
