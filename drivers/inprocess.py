"""The in-process transport: a RobotLink straight to emulated drive units in this process.

Simulations and tests use it to run the fleet against the firmware emulator without any
wire. It still behaves like a wire where it matters: while a robot's communication is
lost (an injected fault), commands to it vanish and it is heard from no more, and the
link reports the loss and the return as ConnectionChanged events.

It depends on the emulator's World only through the narrow surface below (robot lookup,
command calls, an event subscription), so drivers/ does not import firmware_emulator/.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from drivers.commands import InstantCommand, Job, Step
from drivers.events import RobotEvent
from drivers.link import RobotLink, UnknownRobot


class _Robot(Protocol):
    online: bool

    def send_job(self, job: Job) -> bool: ...
    def extend_job(self, job_id: str, steps: Sequence[Step]) -> bool: ...
    def instant(self, command: InstantCommand) -> None: ...


class EmulatedWorld(Protocol):
    """What the link needs of firmware_emulator.world.World."""

    robots: dict[str, _Robot]

    def subscribe(self, callback: Callable[[RobotEvent], None]) -> Callable[[], None]: ...


class InProcessLink(RobotLink):
    def __init__(self, world: EmulatedWorld) -> None:
        self._world = world
        self._queue: list[RobotEvent] = []
        self._unsubscribe: Callable[[], None] | None = world.subscribe(self._queue.append)
        #: Commands that vanished because the robot was offline (tests look at this).
        self.dropped = 0

    def robot_ids(self) -> list[str]:
        return list(self._world.robots)

    def _robot(self, robot_id: str) -> _Robot | None:
        """The robot if the command reaches it; None if the wire is down for it."""
        if self._unsubscribe is None:
            raise RuntimeError("link is closed")
        try:
            robot = self._world.robots[robot_id]
        except KeyError:
            raise UnknownRobot(robot_id) from None
        if not robot.online:
            self.dropped += 1
            return None
        return robot

    def send_job(self, robot_id: str, job: Job) -> None:
        robot = self._robot(robot_id)
        if robot is not None:
            robot.send_job(job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        robot = self._robot(robot_id)
        if robot is not None:
            robot.extend_job(job_id, list(steps))

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        robot = self._robot(robot_id)
        if robot is not None:
            robot.instant(command)

    def drain(self) -> list[RobotEvent]:
        events = list(self._queue)
        self._queue.clear()  # in place: the world holds this list's append
        return events

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
