"""Tasks: the units of work the scheduler hands to robots.

A task names what must move where; which robot does it is decided later (assignment),
and the way there is the router's business. The status life cycle is enforced so
that a scheduler bug surfaces as an InvalidTransition at the faulty call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from maps.model import Cell

from fleet.domain.errors import InvalidTransition
from fleet.domain.lifecycle import advance


class TaskKind(str, Enum):
    FETCH_SHELF = "fetch_shelf"  # bring an inventory shelf to a station (target: station id)
    RETURN_SHELF = "return_shelf"  # take a shelf back to a storage cell (target: cell)
    MOVE_ORDER_SHELF = "move_order_shelf"  # order shelf to a pick port (station id) or packing (cell)
    MOVE_SHELF = "move_shelf"  # operator: a shelf to a new home in storage (target: cell)
    CHARGE = "charge"  # drive to a charger (target: cell)
    PARK = "park"  # drive to a parking cell (target: cell)


class TaskStatus(str, Enum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"


_TASK_MOVES = {
    TaskStatus.PENDING: frozenset({TaskStatus.ASSIGNED, TaskStatus.BLOCKED, TaskStatus.FAILED}),
    TaskStatus.ASSIGNED: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.PENDING, TaskStatus.BLOCKED, TaskStatus.FAILED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.DONE, TaskStatus.BLOCKED, TaskStatus.FAILED}),
    TaskStatus.BLOCKED: frozenset({TaskStatus.PENDING, TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS, TaskStatus.FAILED}),
}

#: Kinds that move a shelf, and the target each accepts: a station id (str) or a cell.
_CARRIES_SHELF = {TaskKind.FETCH_SHELF, TaskKind.RETURN_SHELF, TaskKind.MOVE_ORDER_SHELF, TaskKind.MOVE_SHELF}
_TARGETS: dict[TaskKind, tuple[type, ...]] = {
    TaskKind.FETCH_SHELF: (str,),
    TaskKind.RETURN_SHELF: (Cell,),
    TaskKind.MOVE_ORDER_SHELF: (str, Cell),
    TaskKind.MOVE_SHELF: (Cell,),
    TaskKind.CHARGE: (Cell,),
    TaskKind.PARK: (Cell,),
}


@dataclass(eq=False, kw_only=True)
class Task:
    """Higher `priority` runs first. `reason` says why a task is blocked or failed;
    times are clock seconds."""

    id: str
    kind: TaskKind
    target: Cell | str
    created: float
    priority: int = 0
    robot: str | None = None
    shelf: str | None = None
    updated: float | None = None
    #: a task starts pending; only the life-cycle methods below change these
    status: TaskStatus = field(default=TaskStatus.PENDING, init=False)
    reason: str | None = field(default=None, init=False)
    _blocked_from: TaskStatus | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"task id must be a non-empty string, got {self.id!r}")
        self.kind = TaskKind(self.kind)
        if (self.shelf is None) == (self.kind in _CARRIES_SHELF):
            need = "needs a shelf" if self.kind in _CARRIES_SHELF else "takes no shelf"
            raise ValueError(f"task {self.id}: a {self.kind.value} task {need}, got shelf={self.shelf!r}")
        accepted = _TARGETS[self.kind]
        # Cell is a tuple, never a str, so the isinstance check tells the two target forms apart
        if not isinstance(self.target, accepted) or (isinstance(self.target, str) and not self.target):
            names = " or ".join("station id" if t is str else "cell" for t in accepted)
            raise ValueError(f"task {self.id}: a {self.kind.value} task targets a {names}, got {self.target!r}")
        if self.updated is None:
            self.updated = self.created

    def _move(self, status: TaskStatus, at: float) -> None:
        self.status = advance(f"task {self.id}", self.status, status, _TASK_MOVES)
        self.updated = at

    def assign(self, robot: str, at: float) -> None:
        if not isinstance(robot, str) or not robot:
            raise ValueError(f"task {self.id}: assign needs a robot id, got {robot!r}")
        self._move(TaskStatus.ASSIGNED, at)
        self.robot = robot

    def unassign(self, at: float) -> None:
        """Give the task back to the pool (its robot was needed elsewhere)."""
        self._move(TaskStatus.PENDING, at)
        self.robot = None

    def start(self, at: float) -> None:
        self._move(TaskStatus.IN_PROGRESS, at)

    def finish(self, at: float) -> None:
        self._move(TaskStatus.DONE, at)

    def fail(self, reason: str, at: float) -> None:
        self._move(TaskStatus.FAILED, at)
        self.reason = _reason(self.id, reason)

    def block(self, reason: str, at: float) -> None:
        reason = _reason(self.id, reason)
        before = self.status
        self._move(TaskStatus.BLOCKED, at)
        self._blocked_from, self.reason = before, reason

    def resume(self, at: float) -> None:
        """Unblock: back to the status the task had when it was blocked."""
        if self.status is not TaskStatus.BLOCKED:
            raise InvalidTransition(f"task {self.id}", self.status.value, "resume", "only a blocked task resumes")
        self._move(self._blocked_from, at)
        self._blocked_from, self.reason = None, None

    @property
    def finished(self) -> bool:
        return self.status in (TaskStatus.DONE, TaskStatus.FAILED)


def _reason(task_id: str, reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"task {task_id}: blocking or failing a task needs a reason")
    return reason
