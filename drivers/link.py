"""The one interface through which fleet/ commands robots, whatever the wire.

In-process (emulated robots in the same process), VDA 5050 over MQTT and the framed
serial protocol each implement RobotLink. The scheduler and traffic control only ever see
this class, so a robot can move from one wire to another without any change in fleet/.

Delivery model: commands are fire-and-forget calls (a link that needs acknowledgement
and retransmission does it itself); events are queued by the link, in the order it
received them, and drained by the fleet's shell on its own schedule. That keeps the
fleet's core single-threaded and deterministic, whatever threads a wire uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from drivers.commands import InstantCommand, Job, Step
from drivers.events import RobotEvent
from maps.model import Cell


class UnknownRobot(KeyError):
    def __init__(self, robot_id: str) -> None:
        super().__init__(robot_id)
        self.robot_id = robot_id

    def __str__(self) -> str:
        return f"unknown robot {self.robot_id!r}"


class RobotLink(ABC):
    @abstractmethod
    def robot_ids(self) -> list[str]:
        """Robots this link can currently address (known, online or not)."""

    @abstractmethod
    def send_job(self, robot_id: str, job: Job) -> None:
        """Give the robot a new job; it must not have one in progress."""

    @abstractmethod
    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        """Append steps to the job in progress, continuing from its last step."""

    def preview(self, robot_id: str, job_id: str, cells: Sequence[Cell]) -> None:
        """The way the fleet plans for the robot beyond the last step of its job: not
        granted, a hint that may change at every cycle (VDA 5050's horizon lets a vehicle
        plan its speed and see where its next update will lead). Each call replaces the
        previous preview; an empty one withdraws it. A wire with no use for it (in-process,
        serial: their robots only ever see granted steps) keeps this default, which does
        nothing; a link that wraps other links must pass it on."""

    def takes_preview(self, robot_id: str) -> bool:
        """Whether `preview` reaches the robot at all: the way ahead costs a path walk per
        robot whenever its grant or goal changes (13 % of a 120-robot simulation's control
        cycle), wasted on a wire that drops it. A link that wraps others asks them."""
        return False

    @abstractmethod
    def instant(self, robot_id: str, command: InstantCommand) -> None:
        """Pause, resume, cancel, stop, reset, initialise the position, or ask for status."""

    @abstractmethod
    def drain(self) -> list[RobotEvent]:
        """Every event received since the last call, oldest first."""

    def close(self) -> None:
        """Release the wire (sockets, ports, threads). Idempotent."""
