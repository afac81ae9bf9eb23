"""SerialLink: robots on serial ports behind the same RobotLink as every other wire.

Two clocks meet here on purpose. The wire's timers (retransmission, heartbeat, handshake,
lost detection) run on real monotonic time, because the robot at the other end of the
cable lives in real time whatever the fleet's clock says. The events handed to fleet/ are
stamped with the fleet's clock (fleet/clock.py), like every other link's, so the fleet's
core sees one timeline whichever wire a robot is on.

A robot is online from a completed HELLO/IDENTITY handshake until its port fails, it
stays silent for `lost_after`, a sequenced frame goes unanswered through every
retransmission, or it answers NO_SESSION (it restarted). Going offline is reported as
ConnectionChanged(online=False), as the VDA 5050 driver reports a lost vehicle, and the
link keeps trying to shake hands again.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from drivers import events
from drivers.commands import InstantCommand, InstantKind, Job, Step
from drivers.link import RobotLink, UnknownRobot
from drivers.serial import messages as wire
from drivers.serial.channel import (
    ChannelConfig,
    ChannelEvent,
    Received,
    Refused,
    Undelivered,
)
from drivers.serial.frames import MAX_PAYLOAD
from drivers.serial.messages import NackReason, Side
from drivers.serial.port import PortSettings, SerialPort
from drivers.serial.translate import command_message, fleet_event
from fleet.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SerialRobot:
    """One robot of the fleet and the port it is wired to."""

    robot_id: str
    port: PortSettings


@dataclass(frozen=True)
class LinkSettings:
    #: The robot stops safely after this long without a frame from the master.
    watchdog: float = 1.0
    #: How often the robot sends STATUS (it is also the robot's heartbeat).
    status_interval: float = 0.2
    #: The master sends HEARTBEAT after this long without sending anything else.
    heartbeat_interval: float = 0.25
    #: The robot is presumed lost after this long without a valid frame from it.
    lost_after: float = 1.0
    #: How often an unanswered HELLO is repeated.
    hello_interval: float = 0.25
    channel: ChannelConfig = field(default_factory=ChannelConfig)

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval < self.watchdog:
            raise ValueError(
                f"heartbeat interval {self.heartbeat_interval} s must be positive and shorter "
                f"than the watchdog {self.watchdog} s, or idle robots would stop"
            )
        if not 0 < self.status_interval < self.lost_after:
            raise ValueError(
                f"status interval {self.status_interval} s must be positive and shorter than "
                f"lost_after {self.lost_after} s, or idle robots would be reported lost"
            )
        if self.hello_interval <= 0:
            raise ValueError(f"hello interval must be positive, got {self.hello_interval}")
        wire.Hello(0, self.watchdog_ms, self.status_interval_ms)  # the same range rules

    @property
    def watchdog_ms(self) -> int:
        return round(self.watchdog * 1000)

    @property
    def status_interval_ms(self) -> int:
        return round(self.status_interval * 1000)


def _later(uptime_ms: int, than_ms: int) -> bool:
    """Uptime order modulo 2**32, so a robot up for 50 days does not look stale forever."""
    return 0 < (uptime_ms - than_ms) % 2**32 < 2**31


class _Connection:
    """One robot's port and session, as the link sees it (a PortListener)."""

    def __init__(self, link: "SerialLink", robot: SerialRobot) -> None:
        self.link = link
        self.robot_id = robot.robot_id
        self.settings = link.settings
        self.port = SerialPort(
            robot.port,
            Side.MASTER,
            self,
            link.settings.channel,
            link.monotonic,
            name=robot.robot_id,
        )
        self.lock = threading.RLock()
        self.online = False
        self.nonce = link.new_nonce()
        self.last_hello: float | None = None
        self.last_uptime: int | None = None
        self.job: tuple[str, int] | None = None  # job id, steps sent so far
        self.stale_status = 0
        self.robot_rx_rejected = 0  # from the robot's last STATUS: its view of the line
        self.identity_problem = ""

    # --- commands (fleet thread) -------------------------------------------------------

    def send_job(self, job: Job) -> None:
        with self.lock:
            parts = wire.job_messages(job.job_id, job.steps)
            if not self.online:
                self.link.emit(
                    events.JobRejected, self.robot_id, job_id=job.job_id, reason="robot offline"
                )
                return
            self.job = (job.job_id, len(job.steps))
            for part in parts:
                self.port.send(part)

    def extend_job(self, job_id: str, steps: Sequence[Step]) -> None:
        with self.lock:
            if self.job is None or self.job[0] != job_id:
                raise ValueError(f"robot {self.robot_id!r} was not sent job {job_id!r}")
            parts = wire.job_messages(job_id, steps, first_index=self.job[1])
            if not self.online:
                self.link.emit(
                    events.JobRejected, self.robot_id, job_id=job_id, reason="robot offline"
                )
                return
            self.job = (job_id, self.job[1] + len(steps))
            for part in parts:
                self.port.send(part)

    def instant(self, command: InstantCommand) -> None:
        message = command_message(command)
        with self.lock:
            if not self.online:
                # Nothing reaches it; an offline robot's watchdog has already stopped it.
                log.warning("%s: offline, %s not sent", self.robot_id, command.kind.value)
                return
            self.port.send(message, urgent=command.kind is InstantKind.STOP)

    # --- PortListener (port thread) ----------------------------------------------------

    def port_opened(self, port: SerialPort) -> None:
        log.info("%s: port %s open", self.robot_id, port.settings.url)

    def port_closed(self, port: SerialPort, reason: str) -> None:
        self.go_offline(f"port closed: {reason}")

    def channel_event(self, port: SerialPort, event: ChannelEvent) -> None:
        with self.lock:
            if isinstance(event, Received):
                self.received(event.message)
            elif isinstance(event, Refused):
                self.refused(event.message, event.reason)
            elif isinstance(event, Undelivered):
                retries = self.settings.channel.max_retries
                self.go_offline(
                    f"no answer to {type(event.message).__name__} after {retries} retransmissions"
                )

    def tick(self, port: SerialPort, now: float) -> None:
        with self.lock:
            channel = port.channel
            if not self.online:
                if port.is_open and (
                    self.last_hello is None or now - self.last_hello >= self.settings.hello_interval
                ):
                    self.last_hello = now
                    port.send(
                        wire.Hello(
                            self.nonce, self.settings.watchdog_ms, self.settings.status_interval_ms
                        )
                    )
                return
            if channel.last_heard is None or now - channel.last_heard > self.settings.lost_after:
                self.go_offline(f"silent for more than {self.settings.lost_after} s")
            elif (
                channel.last_sent is None
                or now - channel.last_sent >= self.settings.heartbeat_interval
            ):
                port.send(wire.Heartbeat())

    # --- session -----------------------------------------------------------------------

    def received(self, message: wire.Message) -> None:
        if isinstance(message, wire.Identity):
            self.identified(message)
            return
        if not self.online:
            return  # a robot still talking in a session the master has given up
        if isinstance(message, wire.Status):
            if self.last_uptime is not None and not _later(message.uptime_ms, self.last_uptime):
                self.stale_status += 1  # repeated or overtaken by a newer one
                return
            self.last_uptime = message.uptime_ms
            self.robot_rx_rejected = message.rx_rejected
        event = fleet_event(self.robot_id, self.link.clock.now(), message)
        if event is not None:
            self.link.put(event)

    def identified(self, identity: wire.Identity) -> None:
        if self.online or identity.nonce != self.nonce:
            return  # an answer to an older HELLO
        problem = ""
        if identity.robot_id != self.robot_id:
            problem = f"answers as robot {identity.robot_id!r}"
        elif identity.max_payload < MAX_PAYLOAD:
            problem = (
                f"accepts payloads of {identity.max_payload} bytes, version 1 needs {MAX_PAYLOAD}"
            )
        if problem:
            if problem != self.identity_problem:  # say it once, not at every HELLO
                self.identity_problem = problem
                log.error("%s: port %s %s; not connecting", self.robot_id, self.port.name, problem)
            return
        self.port.with_channel(lambda channel, now: channel.start_session())
        self.online = True
        self.last_uptime = None
        self.link.emit(
            events.ConnectionChanged, self.robot_id, online=True,
            reason=f"firmware {identity.firmware!r}, capabilities {identity.capabilities:#06x}",
        )  # fmt: skip

    def refused(self, message: wire.Message, reason: NackReason) -> None:
        if reason is NackReason.NO_SESSION:
            self.go_offline("robot has no session (it restarted)")
        elif isinstance(message, (wire.NewJob, wire.ExtendJob)):
            self.link.emit(
                events.JobRejected,
                self.robot_id,
                job_id=message.job_id,
                reason=f"frame refused: {reason.name.lower()}",
            )
        else:
            self.link.emit(
                events.ErrorRaised, self.robot_id, code="command_refused", severity=events.Severity.WARNING,
                message=f"{type(message).__name__} refused: {reason.name.lower()}",
            )  # fmt: skip

    def go_offline(self, reason: str) -> None:
        with self.lock:
            self.port.with_channel(lambda channel, now: channel.end_session())
            self.nonce = self.link.new_nonce(self.nonce)
            self.last_hello = None
            if self.online:
                self.online = False
                log.warning("%s: lost: %s", self.robot_id, reason)
                self.link.emit(events.ConnectionChanged, self.robot_id, online=False, reason=reason)


class SerialLink(RobotLink):
    def __init__(
        self,
        robots: Sequence[SerialRobot],
        clock: Clock,
        settings: LinkSettings = LinkSettings(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        ids = [robot.robot_id for robot in robots]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"robot ids configured twice: {', '.join(duplicates)}")
        self.clock = clock
        self.settings = settings
        self.monotonic = monotonic
        self._events: list[events.RobotEvent] = []
        self._events_lock = threading.Lock()
        self._connections = {robot.robot_id: _Connection(self, robot) for robot in robots}
        started: list[_Connection] = []
        try:
            for connection in self._connections.values():
                connection.port.start()
                started.append(connection)
        except BaseException:
            for connection in started:
                connection.port.close()
            raise

    # --- RobotLink ---------------------------------------------------------------------

    def robot_ids(self) -> list[str]:
        return list(self._connections)

    def send_job(self, robot_id: str, job: Job) -> None:
        self._connection(robot_id).send_job(job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        self._connection(robot_id).extend_job(job_id, steps)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        self._connection(robot_id).instant(command)

    def drain(self) -> list[events.RobotEvent]:
        with self._events_lock:
            drained, self._events = self._events, []
        return drained

    def close(self) -> None:
        for connection in self._connections.values():
            connection.port.close()

    # --- diagnostics -------------------------------------------------------------------

    def online(self, robot_id: str) -> bool:
        return self._connection(robot_id).online

    def counters(self, robot_id: str) -> dict[str, int]:
        """Line and channel figures for one robot: what a bench or the console shows."""
        connection = self._connection(robot_id)
        port = connection.port
        figures = {f"rx_{k}": v for k, v in dataclasses.asdict(port.decoder.counters).items()}
        figures.update(dataclasses.asdict(port.channel.counters))
        figures["stale_status"] = connection.stale_status
        figures["robot_rx_rejected"] = connection.robot_rx_rejected
        return figures

    # --- for connections ---------------------------------------------------------------

    def put(self, event: events.RobotEvent) -> None:
        with self._events_lock:
            self._events.append(event)

    def emit(self, event_cls: type[events.RobotEvent], robot_id: str, **values: object) -> None:
        self.put(event_cls(robot_id=robot_id, time=self.clock.now(), **values))

    @staticmethod
    def new_nonce(previous: int | None = None) -> int:
        while True:
            nonce = secrets.randbits(32)
            if nonce != previous:
                return nonce

    def _connection(self, robot_id: str) -> _Connection:
        try:
            return self._connections[robot_id]
        except KeyError:
            raise UnknownRobot(robot_id) from None
