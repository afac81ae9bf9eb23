"""SerialLink against the robot side of the protocol, over real pseudo-terminals.

Each test wires the master (SerialLink) and a robot endpoint through two ptys and a relay
(drivers/serial/line.py): both ends open tty paths with pyserial, exactly as they would open
USB-UART devices. The robot's firmware is a small bench double that records commands and,
when asked, walks a job cell by cell, reporting as a robot would.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Callable, Iterator

import pytest
import serial
from serial import rfc2217

from drivers import events
from drivers.commands import (
    ActionKind,
    CellAction,
    InstantCommand,
    InstantKind,
    Job,
    Step,
)
from drivers.link import UnknownRobot
from drivers.serial import messages as wire
from drivers.serial.channel import ChannelConfig
from drivers.serial.line import LineFaults, Relay, TerminalServer
from drivers.serial.link import LinkSettings, SerialLink, SerialRobot
from drivers.serial.messages import Side
from drivers.serial.port import PortSettings, SerialPort
from drivers.serial.robot import RobotEndpoint
from fleet.clock import SimulatedClock
from maps.model import Cell, Heading

FAST = LinkSettings(
    watchdog=1.0,
    status_interval=0.05,
    heartbeat_interval=0.1,
    lost_after=1.0,
    hello_interval=0.05,
    channel=ChannelConfig(ack_timeout=0.05, max_retries=10),
)
ROBOT_CHANNEL = ChannelConfig(ack_timeout=0.05, max_retries=10)


class BenchFirmware:
    """A robot's firmware reduced to what the link needs: it records, reports, walks.

    Walking takes no physics: each STATUS tick it passes up to `pace` steps of the job it
    holds, reporting CELL_REACHED and ACTION_FINISHED, then JOB_FINISHED at the end.
    """

    def __init__(self, walk: bool = False, pace: int = 10, uptime_ms: int = 1) -> None:
        self.uptime_origin_ms = uptime_ms
        self.walk = walk
        self.pace = pace
        self.endpoint: RobotEndpoint | None = None
        self.commands: list[wire.Message] = []
        self.watchdog_trips = 0
        self.watchdog_tripped_at = 0.0
        self.watchdog_feeds = 0
        self.cell = Cell(2, 3)
        self.heading = Heading.EAST
        self.job_id: str | None = None
        self.steps: list[Step] = []
        self.next_step = 0
        self._start = time.monotonic()

    def command(self, message: wire.Message) -> None:
        self.commands.append(message)
        assert self.endpoint is not None
        if isinstance(message, wire.NewJob) and self.walk:
            self.job_id, self.steps, self.next_step = message.job_id, list(message.steps), 0
        elif isinstance(message, wire.ExtendJob) and self.walk:
            if message.job_id != self.job_id or message.first_index != len(self.steps):
                self.endpoint.send(wire.JobRejected(message.job_id, "extension does not fit"))
            else:
                self.steps += message.steps

    def _walk(self) -> None:
        assert self.endpoint is not None and self.job_id is not None
        for _ in range(self.pace):
            if self.next_step == len(self.steps):
                self.endpoint.send(wire.JobFinished(self.job_id))
                self.job_id, self.steps = None, []
                return
            step = self.steps[self.next_step]
            if step.cell != self.cell:
                self.heading = Heading.between(self.cell, step.cell)
                self.cell = step.cell
            if step.heading is not None:
                self.heading = step.heading
            self.endpoint.send(
                wire.CellReached(self.cell, self.heading, self.job_id, self.next_step)
            )
            for action in step.actions:
                self.endpoint.send(wire.ActionFinished(self.job_id, action.action_id, action.kind))
            self.next_step += 1

    def status(self) -> wire.Status:
        if self.job_id is not None:
            self._walk()
        return wire.Status(
            uptime_ms=(int((time.monotonic() - self._start) * 1000) + self.uptime_origin_ms) % 2**32,
            cell=self.cell, heading=self.heading, offset_x=0.003, offset_y=-0.002,
            x=self.cell.x * 1.25, y=(9 - self.cell.y) * 1.25, theta=self.heading.radians, speed=0.0,
            driving=False, paused=False, stopped=False, charging=False, charge=0.64,
            shelf_id=None, weight_kg=0.0, job_id=self.job_id, step_index=None, steps_total=0,
            rx_rejected=0, errors=("laser_stop",),
        )  # fmt: skip

    def watchdog_expired(self) -> None:
        self.watchdog_trips += 1
        self.watchdog_tripped_at = time.monotonic()

    def watchdog_fed(self) -> None:
        self.watchdog_feeds += 1


class Bench:
    """A master and one robot on a line, collecting the fleet events.

    The line is a relay between two ptys, or a terminal server (the robot on its pty, the
    master on its socket://). `master_port` puts the master elsewhere, e.g. behind an
    RFC 2217 server in front of the relay.
    """

    def __init__(
        self,
        firmware: BenchFirmware,
        line: Relay | TerminalServer | None = None,
        settings: LinkSettings = FAST,
        robot_id: str = "r1",
        max_payload: int = 500,
        master_port: PortSettings | None = None,
    ) -> None:
        self.line = line if line is not None else Relay()
        if isinstance(self.line, Relay):
            self.robot_path = self.line.b.path
            default_master = PortSettings(self.line.a.path)
        else:
            self.robot_path = self.line.pty.path
            default_master = PortSettings(self.line.url, reopen_interval=0.1)
        self.firmware = firmware
        self.clock = SimulatedClock(start=100.0)
        self.endpoint = self.start_robot(robot_id, max_payload)
        self.link = SerialLink(
            [SerialRobot("r1", master_port or default_master)], self.clock, settings
        )
        self.events: list[events.RobotEvent] = []

    @property
    def relay(self) -> Relay:
        assert isinstance(self.line, Relay)
        return self.line

    def start_robot(self, robot_id: str = "r1", max_payload: int = 500) -> RobotEndpoint:
        endpoint = RobotEndpoint(
            PortSettings(self.robot_path),
            self.firmware,
            robot_id,
            "bench-1",
            max_payload=max_payload,
            config=ROBOT_CHANNEL,
        )
        self.firmware.endpoint = endpoint
        endpoint.start()
        return endpoint

    def collect(self) -> list[events.RobotEvent]:
        self.events += self.link.drain()
        return self.events

    def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.collect()
            if condition():
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s; events: {self.kinds()}")

    def of(self, kind: type) -> list:
        return [e for e in self.collect() if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events if not isinstance(e, events.StatusReport)]

    def online(self) -> None:
        self.wait(lambda: self.link.online("r1"))

    def changes(self) -> list[bool]:
        return [e.online for e in self.of(events.ConnectionChanged)]

    def close(self) -> None:
        self.link.close()
        self.endpoint.close()
        self.line.close()


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench(BenchFirmware(), Relay())
    yield b
    b.close()


def test_handshake_status_and_event_times_come_from_the_fleet_clock(bench: Bench) -> None:
    bench.online()
    (up,) = bench.of(events.ConnectionChanged)
    assert up == events.ConnectionChanged(
        "r1", 100.0, True, "firmware 'bench-1', capabilities 0x0007"
    )
    bench.clock.advance(5.0)
    bench.wait(lambda: any(e.time == 105.0 for e in bench.of(events.StatusReport)))
    status = [e for e in bench.of(events.StatusReport) if e.time == 105.0][0]
    assert (status.cell, status.heading, status.x, status.y) == (Cell(2, 3), Heading.EAST, 2.5, 7.5)
    assert (status.charge, status.errors, status.job_id) == (0.64, ("laser_stop",), None)
    assert bench.link.robot_ids() == ["r1"]


def test_every_command_reaches_the_robot_once_in_order(bench: Bench) -> None:
    bench.online()
    job = Job(
        "J1",
        (
            Step(Cell(2, 3)),
            Step(Cell(3, 3), Heading.NORTH, (CellAction("a1", ActionKind.LIFT, "S9"),)),
        ),
    )
    bench.link.send_job("r1", job)
    more = (
        Step(Cell(3, 2)),
        Step(Cell(3, 2), None, (CellAction("a2", ActionKind.WAIT, None, 1.5),)),
    )
    bench.link.extend_job("r1", "J1", more)
    bench.link.instant(
        "r1", InstantCommand(InstantKind.INIT_POSITION, Cell(2, 3), Heading.WEST, "p1")
    )
    kinds = [k for k in InstantKind if k is not InstantKind.INIT_POSITION]
    for kind in kinds:
        bench.link.instant("r1", InstantCommand(kind, command_id=kind.value))
    stop = wire.Instant(InstantKind.STOP, "stop")
    in_order = [
        wire.NewJob("J1", job.steps),
        wire.ExtendJob("J1", 2, more),
        wire.SetPose(Cell(2, 3), Heading.WEST, "p1"),
        *[wire.Instant(kind, kind.value) for kind in kinds],
    ]
    bench.wait(lambda: len(bench.firmware.commands) >= len(in_order))
    time.sleep(0.2)  # room for a wrongly repeated delivery to show up
    got = bench.firmware.commands
    assert [c for c in got if c != stop] == [c for c in in_order if c != stop]
    # The emergency stop overtakes whatever still waits, never the frame in flight (how
    # much still waits depends on thread timing; the channel tests pin the exact rule).
    assert 1 <= got.index(stop) <= in_order.index(stop)


def test_every_robot_event_reaches_the_fleet(bench: Bench) -> None:
    bench.online()
    reports = [
        (wire.CellReached(Cell(3, 3), Heading.NORTH, "J1", 1), events.CellReached("r1", 100.0, Cell(3, 3), Heading.NORTH, "J1", 1)),
        (wire.ActionFinished("J1", "a1", ActionKind.LIFT), events.ActionFinished("r1", 100.0, "J1", "a1", ActionKind.LIFT)),
        (wire.ActionFailed(None, "a2", ActionKind.LOWER, "stuck"), events.ActionFailed("r1", 100.0, None, "a2", ActionKind.LOWER, "stuck")),
        (wire.JobFinished("J1"), events.JobFinished("r1", 100.0, "J1")),
        (wire.JobRejected("J2", "busy"), events.JobRejected("r1", 100.0, "J2", "busy")),
        (wire.ErrorRaised("laser_stop", events.Severity.WARNING, "obstacle"), events.ErrorRaised("r1", 100.0, "laser_stop", events.Severity.WARNING, "obstacle")),
        (wire.ErrorCleared("laser_stop"), events.ErrorCleared("r1", 100.0, "laser_stop")),
        (wire.BatteryReport(0.25, True), events.BatteryReport("r1", 100.0, 0.25, True)),
        (wire.LoadChanged("S9", 312.5), events.LoadChanged("r1", 100.0, "S9", 312.5)),
    ]  # fmt: skip
    for message, _ in reports:
        bench.endpoint.send(message)
    expected = [event for _, event in reports]

    def reported() -> list:
        return [
            e
            for e in bench.collect()
            if not isinstance(e, (events.StatusReport, events.ConnectionChanged))
        ]

    bench.wait(lambda: len(reported()) >= len(expected))
    time.sleep(0.2)
    assert reported() == expected


def test_a_long_job_crosses_several_frames_and_completes(bench: Bench) -> None:
    bench.firmware.walk = True
    bench.online()
    steps = [Step(Cell(2, 3))] + [
        Step(Cell(2 + i, 3), Heading.EAST, (CellAction(f"wait-{i}", ActionKind.WAIT, None, 0.5),))
        for i in range(1, 120)
    ]
    bench.link.send_job("r1", Job("long", tuple(steps)))
    bench.wait(lambda: bench.of(events.JobFinished))
    frames_used = [
        c for c in bench.firmware.commands if isinstance(c, (wire.NewJob, wire.ExtendJob))
    ]
    assert len(frames_used) > 1
    assert [s for f in frames_used for s in f.steps] == steps
    assert [e.step_index for e in bench.of(events.CellReached)] == list(range(len(steps)))
    assert len(bench.of(events.ActionFinished)) == len(steps) - 1
    assert [e.job_id for e in bench.of(events.JobFinished)] == ["long"]


def test_lost_acks_cause_retransmission_and_duplicates_are_suppressed(bench: Bench) -> None:
    bench.online()
    bench.relay.cut_a_to_b.set()  # the master's ACKs no longer reach the robot
    bench.endpoint.send(wire.JobFinished("J1"))
    bench.wait(lambda: bench.of(events.JobFinished))
    bench.wait(lambda: bench.link.counters("r1")["duplicates"] >= 2)
    bench.relay.cut_a_to_b.clear()
    bench.wait(lambda: not bench.endpoint.port.channel.busy)  # the robot got its ACK at last
    time.sleep(0.1)
    assert [e.job_id for e in bench.of(events.JobFinished)] == ["J1"]
    assert bench.endpoint.port.channel.counters.retransmitted >= 2
    assert bench.link.online("r1")


def test_a_silent_robot_is_lost_and_found_again(bench: Bench) -> None:
    bench.online()
    bench.endpoint.close()  # the robot goes quiet; the cable stays
    bench.wait(lambda: any(not e.online for e in bench.of(events.ConnectionChanged)), timeout=5.0)
    down = [e for e in bench.of(events.ConnectionChanged) if not e.online][0]
    assert "silent" in down.reason
    assert not bench.link.online("r1")
    bench.link.send_job("r1", Job("J9", (Step(Cell(2, 3)),)))
    bench.wait(lambda: bench.of(events.JobRejected))
    assert bench.of(events.JobRejected)[0].reason == "robot offline"
    bench.endpoint = bench.start_robot()
    bench.wait(lambda: bench.changes() == [True, False, True])


def test_a_cut_cable_is_lost_and_the_robot_watchdog_stops_it(bench: Bench) -> None:
    bench.online()
    bench.relay.cut()
    bench.wait(lambda: bench.firmware.watchdog_trips == 1, timeout=5.0)
    bench.wait(lambda: any(not e.online for e in bench.of(events.ConnectionChanged)), timeout=5.0)
    bench.relay.cut(broken=False)
    bench.wait(lambda: bench.firmware.watchdog_feeds == 1, timeout=5.0)
    bench.wait(lambda: bench.changes() == [True, False, True])
    assert bench.firmware.watchdog_trips == 1


def test_master_silence_trips_the_watchdog_in_time(bench: Bench) -> None:
    bench.online()
    time.sleep(1.5)  # heartbeats keep an idle robot going past its watchdog time
    assert bench.firmware.watchdog_trips == 0
    closed_at = time.monotonic()
    bench.link.close()
    bench.wait(lambda: bench.firmware.watchdog_trips == 1, timeout=5.0)
    last_heard = bench.endpoint.port.channel.last_heard
    assert last_heard is not None and bench.firmware.watchdog_tripped_at > closed_at
    # Not before the watchdog time since the master's last frame, and not long after.
    assert FAST.watchdog <= bench.firmware.watchdog_tripped_at - last_heard < FAST.watchdog + 0.5


def test_a_restarted_robot_answers_no_session_and_is_reconnected() -> None:
    patient = LinkSettings(
        watchdog=5.0, status_interval=0.05, heartbeat_interval=0.1, lost_after=5.0,
        hello_interval=0.05, channel=ChannelConfig(ack_timeout=0.05, max_retries=10),
    )  # fmt: skip
    bench = Bench(BenchFirmware(), Relay(), patient)
    try:
        bench.online()
        bench.endpoint.close()
        bench.endpoint = bench.start_robot()  # fresh firmware state: no session
        bench.link.instant("r1", InstantCommand(InstantKind.PAUSE))
        bench.wait(lambda: bench.changes() == [True, False, True])
        down = [e for e in bench.of(events.ConnectionChanged) if not e.online][0]
        assert "no session" in down.reason
    finally:
        bench.close()


@pytest.mark.parametrize(
    ("robot_id", "max_payload", "problem"),
    [("r2", 500, "answers as robot 'r2'"), ("r1", 200, "accepts payloads of 200 bytes")],
)
def test_a_port_whose_robot_does_not_fit_is_not_connected(
    robot_id: str, max_payload: int, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    bench = Bench(BenchFirmware(), Relay(), robot_id=robot_id, max_payload=max_payload)
    try:
        bench.wait(lambda: problem in caplog.text)
        time.sleep(0.3)  # several more HELLO/IDENTITY rounds
        assert not bench.link.online("r1")
        assert bench.collect() == []
        assert caplog.text.count(problem) == 1  # said once, not at every HELLO
    finally:
        bench.close()


def test_absent_device_is_offline_and_bad_urls_are_refused() -> None:
    link = SerialLink(
        [SerialRobot("r1", PortSettings("/dev/does-not-exist-ttyUSB9"))], SimulatedClock()
    )
    try:
        assert not link.online("r1")
        link.send_job("r1", Job("J1", (Step(Cell(0, 0)),)))
        assert [type(e) for e in link.drain()] == [events.JobRejected]
        with pytest.raises(UnknownRobot):
            link.instant("r9", InstantCommand(InstantKind.PAUSE))
        with pytest.raises(ValueError, match="not sent job"):
            link.extend_job("r1", "J7", [Step(Cell(0, 1))])
    finally:
        link.close()
    with pytest.raises(ValueError):
        SerialLink([SerialRobot("r1", PortSettings("nosuchscheme://x"))], SimulatedClock())
    with pytest.raises(ValueError, match="twice"):
        SerialLink(
            [
                SerialRobot("r1", PortSettings("loop://")),
                SerialRobot("r1", PortSettings("loop://")),
            ],
            SimulatedClock(),
        )


def test_link_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="watchdog"):
        LinkSettings(watchdog=0.2, heartbeat_interval=0.25)
    with pytest.raises(ValueError, match="lost_after"):
        LinkSettings(status_interval=1.0, lost_after=1.0)
    with pytest.raises(ValueError, match="out of range"):
        LinkSettings(watchdog=0.09, heartbeat_interval=0.05)


def test_noisy_line_delivers_everything_once_in_order() -> None:
    """Bit errors at 1e-4 and dropped bytes both ways: a long exchange still arrives
    exactly once and in order, and a multi-step job completes."""
    relay = Relay(
        LineFaults(bit_error_rate=1e-4, drop_rate=5e-4, seed=1),
        LineFaults(bit_error_rate=1e-4, drop_rate=5e-4, seed=2),
    )
    bench = Bench(BenchFirmware(walk=True), relay)
    try:
        bench.online()
        count = 400
        for n in range(count):
            bench.link.instant("r1", InstantCommand(InstantKind.STATUS, command_id=f"c{n}"))
            bench.endpoint.send(wire.ErrorCleared(f"e{n}"))
        path = [Cell(2, 3), Cell(3, 3), Cell(3, 4), Cell(3, 5), Cell(4, 5), Cell(5, 5)]
        job = Job(
            "noisy",
            tuple(
                Step(c, None, (CellAction(f"w{i}", ActionKind.WAIT, None, 0.1),))
                for i, c in enumerate(path)
            ),
        )
        bench.link.send_job("r1", job)
        bench.wait(lambda: bench.of(events.JobFinished), timeout=60.0)
        bench.wait(lambda: len(bench.of(events.ErrorCleared)) >= count, timeout=60.0)
        time.sleep(0.3)
        got = [c.command_id for c in bench.firmware.commands if isinstance(c, wire.Instant)]
        assert got == [f"c{n}" for n in range(count)]
        assert [e.code for e in bench.of(events.ErrorCleared)] == [f"e{n}" for n in range(count)]
        assert [e.cell for e in bench.of(events.CellReached)] == path
        assert [e.action_id for e in bench.of(events.ActionFinished)] == [
            f"w{i}" for i in range(len(path))
        ]
        assert [e.job_id for e in bench.of(events.JobFinished)] == ["noisy"]
        # The line really was noisy and the protocol really recovered.
        assert relay.a_to_b.flipped + relay.b_to_a.flipped > 0
        master = bench.link.counters("r1")
        robot = bench.endpoint.port.channel.counters
        assert master["rx_crc"] + master["rx_cobs"] + master["rx_short"] > 0
        assert master["retransmitted"] + robot.retransmitted > 0
        assert bench.changes() == [True]
    finally:
        bench.close()


def test_port_over_loop_url_carries_frames_to_itself() -> None:
    """loop:// echoes what is written: a robot-side port hears its own HEARTBEAT frames
    as if from a master, through pyserial, the reader thread, decoder and channel."""
    heard: list[wire.Message] = []
    done = threading.Event()

    class Listener:
        def port_opened(self, port: object) -> None: ...

        def port_closed(self, port: object, reason: str) -> None: ...

        def channel_event(self, port: object, event: object) -> None:
            heard.append(event.message)  # type: ignore[attr-defined]
            if len(heard) == 3:
                done.set()

        def tick(self, port: object, now: float) -> None: ...

    port = SerialPort(
        PortSettings("loop://", baudrate=9600, options={"bytesize": serial.EIGHTBITS}),
        Side.ROBOT,
        Listener(),
    )
    port.start()
    try:
        port.write_raw(b"\x13\x37 line noise \x00")
        for _ in range(3):
            port.send(wire.Heartbeat())
        assert done.wait(5.0)
        assert heard == [wire.Heartbeat()] * 3
        assert port.decoder.counters.rejected == 1
    finally:
        port.close()


def test_robot_behind_a_terminal_server_over_socket_url() -> None:
    """socket://host:port, as a bench reaches a robot through a serial terminal server (a
    noisy one); the server hanging up makes the robot lost until the link reconnects."""
    noise = TerminalServer(
        to_client=LineFaults(1e-3, 1e-3, 5), from_client=LineFaults(1e-3, 1e-3, 6)
    )
    bench = Bench(BenchFirmware(walk=True), noise)
    try:
        bench.online()
        bench.link.send_job("r1", Job("J1", (Step(Cell(2, 3)), Step(Cell(2, 4)))))
        bench.wait(lambda: bench.of(events.JobFinished))
        assert [e.cell for e in bench.of(events.CellReached)] == [Cell(2, 3), Cell(2, 4)]
        assert isinstance(bench.line, TerminalServer)
        bench.line.hang_up()
        bench.wait(lambda: bench.changes() == [True, False, True])
        down = [e for e in bench.of(events.ConnectionChanged) if not e.online][0]
        assert "port closed" in down.reason
        assert noise.to_client.flipped + noise.from_client.flipped > 0  # type: ignore[union-attr]
    finally:
        bench.close()


def test_robot_reports_the_frames_it_rejected(bench: Bench) -> None:
    bench.online()
    # Three broken frames on the line towards the robot: garbage, a bad CRC, a stray byte run.
    os.write(
        bench.relay.b.master_fd,
        b"\x05\x01\x00" + bytes.fromhex("04011001020202030202 03afed 00") + b"\x02\x02\x00",
    )
    bench.wait(lambda: bench.link.counters("r1")["robot_rx_rejected"] == 3)
    assert bench.endpoint.port.decoder.counters.crc >= 1
    assert bench.link.online("r1")


def test_status_keeps_flowing_when_the_robot_uptime_wraps() -> None:
    bench = Bench(BenchFirmware(uptime_ms=2**32 - 300), Relay())
    try:
        bench.online()
        time.sleep(0.8)  # the robot's uptime passes 2**32 ms and starts again from 0
        bench.collect()
        reports = len(bench.of(events.StatusReport))
        bench.wait(lambda: len(bench.of(events.StatusReport)) >= reports + 5)
        assert bench.link.counters("r1")["stale_status"] == 0
        assert bench.firmware.status().uptime_ms < 2**31  # it did wrap
    finally:
        bench.close()


class PtyDevice(serial.Serial):
    """A pty opened as a serial device, minus the modem lines a pty does not have."""

    cts = dsr = ri = cd = property(lambda self: True)

    def _update_rts_state(self) -> None: ...

    def _update_dtr_state(self) -> None: ...


class Rfc2217Server:
    """A minimal RFC 2217 (telnet COM port control) server in front of a tty path, built
    on pyserial's own PortManager, as a bench would reach a robot through one."""

    def __init__(self, device_path: str) -> None:
        self.device_path = device_path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"rfc2217://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            with connection:
                self.serve(connection)

    def serve(self, connection: socket.socket) -> None:
        device = PtyDevice(self.device_path, timeout=0)

        class Writer:
            write = connection.sendall

        manager = rfc2217.PortManager(device, Writer())
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([connection, device.fileno()], [], [], 0.05)
                if connection in ready:
                    data = connection.recv(4096)
                    if not data:
                        return
                    device.write(b"".join(manager.filter(data)))
                if device.fileno() in ready:
                    connection.sendall(b"".join(manager.escape(device.read(4096))))
        except OSError:
            return  # the client went away mid-write
        finally:
            device.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2.0)
        self.listener.close()


# pyserial's rfc2217 client still calls Thread.setDaemon/setName.
@pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")
def test_robot_behind_an_rfc2217_server() -> None:
    relay = Relay()
    server = Rfc2217Server(relay.a.path)
    with pytest.raises(ValueError, match="write_timeout=None"):
        SerialLink([SerialRobot("r1", PortSettings(server.url))], SimulatedClock(), FAST)
    master = PortSettings(server.url, baudrate=57600, write_timeout=None)
    bench = Bench(BenchFirmware(walk=True), relay, master_port=master)
    try:
        bench.online()
        bench.link.send_job("r1", Job("J1", (Step(Cell(2, 3)), Step(Cell(3, 3)), Step(Cell(3, 2)))))
        bench.wait(lambda: bench.of(events.JobFinished))
        cells = [e.cell for e in bench.of(events.CellReached)]
        assert cells == [Cell(2, 3), Cell(3, 3), Cell(3, 2)]
    finally:
        bench.close()
        server.close()


class FaultyFirmware(BenchFirmware):
    """Firmware with a bug: it raises on the first PAUSE it is given."""

    def command(self, message: wire.Message) -> None:
        super().command(message)
        if message == wire.Instant(InstantKind.PAUSE, "boom"):
            raise RuntimeError("firmware bug")


def test_a_failing_firmware_callback_does_not_stop_the_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bench = Bench(FaultyFirmware(), Relay())
    try:
        bench.online()
        bench.link.instant("r1", InstantCommand(InstantKind.PAUSE, command_id="boom"))
        bench.link.instant("r1", InstantCommand(InstantKind.RESUME, command_id="after"))
        bench.wait(lambda: wire.Instant(InstantKind.RESUME, "after") in bench.firmware.commands)
        assert "firmware bug" in caplog.text
        assert bench.link.online("r1")
    finally:
        bench.close()
