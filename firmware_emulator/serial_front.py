"""The emulated robots on serial lines: each drive unit's firmware behind the serial protocol.

A real robot's controller has a UART; the emulator gives each drive unit one by putting
the robot's side of the protocol (drivers/serial/robot.py: framing, sequencing, sessions,
STATUS cadence, watchdog timing) in front of its firmware interface. A master, a bench or
`fleet hil check` then cannot tell it from a robot: it opens a pseudo-terminal or a TCP
port and speaks the protocol byte for byte.

Threads meet here. Every port has its own thread, and the world is stepped by another;
the drive units are not thread-safe, so one lock (`SerialFloor.lock`) is held while the
world steps and while a command from a port is applied. Events the world emits while the
lock is held go straight to the robot's port, whose send() is thread-safe.

`Quirks` make a deliberately broken robot, for showing that the bench catches one.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import urlsplit

from drivers.commands import InstantCommand, InstantKind, Job
from drivers.events import ConnectionChanged, RobotEvent, Severity, StatusReport
from drivers.serial import messages as wire
from drivers.serial.channel import ChannelConfig
from drivers.serial.line import Chain, LineFaults, Relay, TerminalServer, WrongCrc
from drivers.serial.port import PortSettings
from drivers.serial.robot import RobotEndpoint
from drivers.serial.translate import event_message, robot_command
from firmware_emulator.drive_unit import EMERGENCY_STOP, DriveUnit
from firmware_emulator.pacing import PacedFloor
from firmware_emulator.world import World

#: The error a robot raises when its watchdog stops it (docs/serial-protocol.md 6.2).
WATCHDOG = "watchdog"
FIRMWARE_VERSION = "agv-emulator 1"


@dataclass(frozen=True)
class Quirks:
    """Departures from the protocol, for tests of the bench only; a robot with none conforms."""

    #: Ignore the watchdog: keep driving when the master goes silent.
    no_watchdog: bool = False
    #: Every frame the robot sends carries a wrong CRC (applied on its line: line.WrongCrc).
    wrong_crc: bool = False


class SerialFront:
    """One drive unit's firmware as the serial endpoint sees it (drivers.serial.robot.Firmware)."""

    def __init__(self, floor: "SerialFloor", unit: DriveUnit) -> None:
        self.floor = floor
        self.unit = unit
        self.endpoint: RobotEndpoint | None = None
        self.watchdog_stopped = False
        self._boot = time.monotonic()

    # --- Firmware ------------------------------------------------------------------------

    def command(self, message: wire.Message) -> None:
        order = robot_command(message)
        with self.floor.lock:
            if isinstance(order, Job):
                self.unit.send_job(order)
            elif isinstance(order, wire.ExtendJob):
                if order.job_id == self.unit.job_id and order.first_index != len(self.unit.steps):
                    self.send(wire.JobRejected(
                        order.job_id,
                        f"extension starts at step {order.first_index}, I hold {len(self.unit.steps)}",
                    ))  # fmt: skip
                else:
                    self.unit.extend_job(order.job_id, list(order.steps))
            else:
                self.unit.instant(order)

    def status(self) -> wire.Status:
        with self.floor.lock:
            s = self.unit.status()
        codes = tuple(error.code for error in s.errors)
        if self.watchdog_stopped:
            codes += (WATCHDOG,)
        uptime_ms = int((time.monotonic() - self._boot) * 1000) % 2**32
        return wire.Status(
            uptime_ms=uptime_ms, cell=s.cell, heading=s.heading,
            offset_x=s.qr_offset[0], offset_y=s.qr_offset[1], x=s.x, y=s.y, theta=_angle(s.theta),
            speed=s.speed, driving=s.state in ("driving", "turning"), paused=s.paused,
            stopped=EMERGENCY_STOP in codes, charging=s.charging, charge=s.charge,
            shelf_id=s.shelf_id, weight_kg=s.load_kg, job_id=s.job_id, step_index=s.step_index,
            steps_total=s.steps_total, rx_rejected=0, errors=codes,
        )  # fmt: skip

    def watchdog_expired(self) -> None:
        if self.floor.quirks.no_watchdog:
            return
        with self.floor.lock:
            # PAUSE brakes at the normal deceleration and keeps the job: what 6.2 asks.
            self.unit.instant(InstantCommand(InstantKind.PAUSE, command_id=WATCHDOG))
        self.watchdog_stopped = True
        self.send(wire.ErrorRaised(WATCHDOG, Severity.WARNING, "master silent: stopped, RESUME to carry on"))

    def watchdog_fed(self) -> None:
        if self.watchdog_stopped:
            self.watchdog_stopped = False
            self.send(wire.ErrorCleared(WATCHDOG))

    # --- from the world --------------------------------------------------------------------

    def event(self, event: RobotEvent) -> None:
        # STATUS is the endpoint's, at the rate the master asked for; connection changes
        # are the wire's own business.
        if not isinstance(event, (StatusReport, ConnectionChanged)):
            self.send(event_message(event))

    def send(self, message: wire.Message) -> None:
        if self.endpoint is not None:
            self.endpoint.send(message)


def _angle(theta: float) -> float:
    """Wrap to [-pi, pi]: the wire's mrad field holds one turn, odometry may hold several."""
    return math.remainder(theta, math.tau)


class SerialFloor(PacedFloor):
    """Every robot of a world on its own serial port, and the lock that serialises them."""

    def __init__(
        self,
        world: World,
        ports: Mapping[str, PortSettings],
        quirks: Quirks = Quirks(),
        config: ChannelConfig = ChannelConfig(),
        firmware_version: str = FIRMWARE_VERSION,
    ) -> None:
        unknown = sorted(set(ports) - set(world.robots))
        if unknown:
            raise ValueError(f"no robot {', '.join(unknown)} in the world")
        self.world = world
        self.quirks = quirks
        self.lock = threading.RLock()
        self.fronts = {robot_id: SerialFront(self, world.robots[robot_id]) for robot_id in ports}
        for robot_id, settings in ports.items():
            front = self.fronts[robot_id]
            # STATUS is sampled and queued under the world's lock: an event the world
            # emits meanwhile cannot overtake it and leave the master with an older state.
            front.endpoint = RobotEndpoint(settings, front, robot_id, firmware_version, config=config,
                                           status_lock=self.lock)
        self._unsubscribe: Callable[[], None] | None = world.subscribe(self._event)

    def _event(self, event: RobotEvent) -> None:
        front = self.fronts.get(event.robot_id)
        if front is not None:
            front.event(event)

    def start(self) -> None:
        for front in self.fronts.values():
            assert front.endpoint is not None
            front.endpoint.start()

    def step_to_now(self) -> None:
        """Catch the world up with its (wall) clock: the paced loop's one step."""
        with self.lock:
            self.world.run_paced(self.world.now())

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for front in self.fronts.values():
            if front.endpoint is not None:
                front.endpoint.close()


@dataclass(frozen=True)
class LineNoise:
    """Faults injected on every robot's line, both ways, at these rates (see line.LineFaults)."""

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    delay_rate: float = 0.0
    delay: float = 0.0
    seed: int = 0

    def faults(self, stream: int) -> LineFaults | None:
        """Independent, reproducible faults for one direction of one line."""
        line = LineFaults(self.bit_error_rate, self.drop_rate, self.seed * 1000 + stream, self.delay_rate, self.delay)
        return line if line.active else None


class SerialLines:
    """The cables: one line per robot, on pseudo-terminals (`pty`) or TCP (`tcp://HOST:PORT`,
    consecutive ports from PORT). `robot_ports` is what the floor opens, `master_urls` what
    a master opens (a pty path or socket://host:port)."""

    def __init__(self, spec: str, robot_ids: list[str], noise: LineNoise = LineNoise(),
                 quirks: Quirks = Quirks()) -> None:
        self.robot_ports: dict[str, PortSettings] = {}
        self.master_urls: dict[str, str] = {}
        #: Each robot's cable, for a test that pulls one out (Relay.cut, TerminalServer.hang_up).
        self.lines: dict[str, Relay | TerminalServer] = {}
        host, first_port = _parse_spec(spec)
        if host is not None and first_port and first_port + len(robot_ids) - 1 > 65535:
            raise ValueError(f"{len(robot_ids)} robots need ports {first_port}..{first_port + len(robot_ids) - 1}, "
                             "past 65535")
        try:
            for n, robot_id in enumerate(robot_ids):
                noise_out, noise_in = noise.faults(2 * n), noise.faults(2 * n + 1)
                to_master = Chain(WrongCrc(), *([noise_out] if noise_out else [])) if quirks.wrong_crc else noise_out
                if host is None:
                    relay = Relay(a_to_b=to_master, b_to_a=noise_in)
                    self.lines[robot_id] = relay
                    self.robot_ports[robot_id] = PortSettings(relay.a.path)
                    self.master_urls[robot_id] = relay.b.path
                else:
                    server = TerminalServer(host, first_port + n, to_client=to_master, from_client=noise_in)
                    self.lines[robot_id] = server
                    self.robot_ports[robot_id] = PortSettings(server.pty.path)
                    self.master_urls[robot_id] = server.url
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for line in self.lines.values():
            line.close()
        self.lines.clear()


def _parse_spec(spec: str) -> tuple[str | None, int]:
    """(None, 0) for "pty"; (host, port) for "tcp://host:port"."""
    if spec == "pty":
        return None, 0
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"--serial takes 'pty' or 'tcp://HOST:PORT', got {spec!r}")
    return parts.hostname, port
