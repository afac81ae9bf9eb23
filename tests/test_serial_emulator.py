"""The emulator on serial lines: `fleet emulate --serial` and the master (SerialLink) driving
emulated robots over real pseudo-terminals and TCP, with the watchdog and a noisy line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from drivers import events
from drivers.commands import ActionKind, CellAction, InstantCommand, InstantKind, Job, Step
from drivers.serial.channel import ChannelConfig
from drivers.serial.line import Relay
from drivers.serial.link import LinkSettings, SerialLink, SerialRobot
from drivers.serial.port import PortSettings
from firmware_emulator.serial_front import LineNoise, SerialFloor, SerialLines
from firmware_emulator.world import World
from fleet.clock import SimulatedClock, WallClock
from maps import load_map
from maps.model import Cell, Heading

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "data" / "tiny.toml"
#: Quick STATUS and retransmission; the protocol's default watchdog and lost time, which
#: a loaded, shared test machine does not trip by starving a thread for a moment.
SETTINGS = LinkSettings(
    watchdog=1.0, status_interval=0.05, heartbeat_interval=0.1, lost_after=1.0, hello_interval=0.05,
    channel=ChannelConfig(ack_timeout=0.06, max_retries=10),
)


class Fleet:
    """Emulated robots behind serial lines, a master on the other ends, the world in wall
    time (sped up `speed` times: the wire's timers stay in real time)."""

    def __init__(self, cells: dict[str, Cell], spec: str = "pty", noise: LineNoise = LineNoise(),
                 speed: float = 4.0) -> None:
        self.world = World(load_map(TINY), WallClock(speed), seed=2)
        for robot_id, cell in cells.items():
            self.world.add_robot(robot_id, cell, Heading.EAST)
        self.lines = SerialLines(spec, list(cells), noise)
        self.floor = SerialFloor(self.world, self.lines.robot_ports,
                                 config=ChannelConfig(ack_timeout=0.06, max_retries=10))
        self.floor.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.floor.run, kwargs={"stop": self._stop}, daemon=True)
        self._thread.start()
        self.link = SerialLink([SerialRobot(r, PortSettings(u)) for r, u in self.lines.master_urls.items()],
                               SimulatedClock(), SETTINGS)
        self.events: list[events.RobotEvent] = []

    def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.events += self.link.drain()
            if condition():
                return
            time.sleep(0.01)
        kinds = [type(e).__name__ for e in self.events if not isinstance(e, events.StatusReport)]
        raise AssertionError(f"timed out after {timeout} s; events: {kinds}")

    def of(self, kind: type, robot_id: str = "r1") -> list:
        return [e for e in self.events if isinstance(e, kind) and e.robot_id == robot_id]

    def close(self) -> None:
        self.link.close()
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.floor.close()
        self.lines.close()


def east(start: Cell, cells: int) -> tuple[Step, ...]:
    return tuple(Step(Cell(start.x + k, start.y)) for k in range(cells + 1))


def test_a_job_over_a_pty_moves_the_emulated_robot_and_reports_every_cell() -> None:
    fleet = Fleet({"r1": Cell(1, 3), "r2": Cell(1, 1)})
    try:
        fleet.wait(lambda: fleet.link.online("r1") and fleet.link.online("r2"))
        fleet.link.send_job("r1", Job("j1", east(Cell(1, 3), 4)))
        fleet.wait(lambda: fleet.of(events.JobFinished))
        reached = [e.cell for e in fleet.of(events.CellReached)]
        assert reached == [Cell(x, 3) for x in range(2, 6)]
        assert fleet.world.robots["r1"].cell == Cell(5, 3)
        assert fleet.of(events.JobFinished, "r2") == []
        fleet.wait(lambda: fleet.of(events.StatusReport)[-1].cell == Cell(5, 3))
    finally:
        fleet.close()


def test_the_watchdog_stops_a_driving_robot_which_waits_for_resume() -> None:
    fleet = Fleet({"r1": Cell(1, 3)}, speed=1.0)
    try:
        fleet.wait(lambda: fleet.link.online("r1"))
        fleet.link.send_job("r1", Job("j1", east(Cell(1, 3), 6)))
        unit = fleet.world.robots["r1"]
        fleet.wait(lambda: float(fleet.world.v[unit.index]) > 0.3)
        relay = fleet.lines.lines["r1"]
        assert isinstance(relay, Relay)
        relay.cut()
        cut_at = time.monotonic()
        fleet.wait(lambda: "paused" in unit.holds, timeout=SETTINGS.watchdog + 2.0)
        # The robot counts from the last frame it heard, at most a heartbeat before the cut.
        assert time.monotonic() - cut_at >= SETTINGS.watchdog - SETTINGS.heartbeat_interval - 0.02
        fleet.wait(lambda: float(fleet.world.v[unit.index]) < 1e-9, timeout=3.0)
        assert unit.job_id == "j1" and unit.cell != Cell(7, 3)
        relay.cut(False)
        # The error clears as the master is heard again. Its ERROR_CLEARED may be lost with
        # the old session (section 6.1: then the new session's STATUS is authoritative).
        def cleared_but_paused() -> bool:
            status = fleet.of(events.StatusReport)
            return fleet.link.online("r1") and "watchdog" not in status[-1].errors and status[-1].paused

        fleet.wait(cleared_but_paused)
        assert {e.code for e in fleet.of(events.ErrorCleared)} <= {"watchdog"}
        assert [e.code for e in fleet.of(events.ErrorRaised)] in ([], ["watchdog"])
        time.sleep(0.3)
        assert float(fleet.world.v[unit.index]) < 1e-9, "drove on before RESUME"
        fleet.link.instant("r1", InstantCommand(InstantKind.RESUME))
        fleet.wait(lambda: fleet.of(events.JobFinished))
        assert unit.cell == Cell(7, 3)
        changes = [e.online for e in fleet.of(events.ConnectionChanged)]
        assert changes[0] and changes[-1] and False in changes
    finally:
        fleet.close()


def test_a_shelf_trip_completes_on_a_noisy_line_with_stalls() -> None:
    """Bit errors at 1e-4, dropped bytes and line stalls, both ways: the trip (drive under
    a shelf, lift, carry it, set it down) completes exactly as on a clean line."""
    noise = LineNoise(bit_error_rate=1e-4, drop_rate=2e-4, delay_rate=1e-3, delay=0.03, seed=4)
    fleet = Fleet({"r1": Cell(1, 3)}, noise=noise, speed=4.0)
    try:
        shelf = fleet.world.stored_shelf_at(Cell(2, 2))
        steps = (Step(Cell(1, 3)), Step(Cell(2, 3)), Step(Cell(2, 2), None, (CellAction("up", ActionKind.LIFT, shelf),)),
                 Step(Cell(2, 3)), Step(Cell(3, 3)), Step(Cell(4, 3), None, (CellAction("down", ActionKind.LOWER, shelf),)))
        fleet.wait(lambda: fleet.link.online("r1"))
        fleet.link.send_job("r1", Job("trip", steps))
        fleet.wait(lambda: fleet.of(events.JobFinished), timeout=20.0)
        assert [e.action_id for e in fleet.of(events.ActionFinished)] == ["up", "down"]
        assert [e.cell for e in fleet.of(events.CellReached)] == [Cell(2, 3), Cell(2, 2), Cell(2, 3), Cell(3, 3), Cell(4, 3)]
        assert fleet.world.stored_shelf_at(Cell(4, 3)) == shelf
        faults = [f for line in fleet.lines.lines.values() for f in (line.a_to_b, line.b_to_a) if f is not None]
        assert sum(f.flipped + f.dropped for f in faults) > 0, "the line was not noisy"
        assert sum(f.delayed for f in faults) > 0
    finally:
        fleet.close()


def _emulate(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fleet", "emulate", "--map", str(TINY), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _ports(proc: subprocess.Popen, count: int) -> dict[str, str]:
    assert proc.stdout is not None
    found = {}
    while len(found) < count:
        line = proc.stdout.readline()
        assert line, f"emulator ended: {proc.stderr.read() if proc.stderr else ''}"
        found[json.loads(line)["robot"]] = json.loads(line)["port"]
    return found


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            base = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
                return base
    raise AssertionError("no two consecutive free ports")


@pytest.mark.parametrize("spec", ["pty", "tcp"])
def test_fleet_emulate_serial_prints_one_port_per_robot_and_speaks_the_protocol(spec: str) -> None:
    serial_spec = "pty" if spec == "pty" else f"tcp://127.0.0.1:{_free_port_pair()}"
    proc = _emulate("--robots", "2", "--serial", serial_spec, "--duration", "20", "--report-every", "100")
    link = None
    try:
        ports = _ports(proc, 2)
        assert sorted(ports) == ["robot-1", "robot-2"]
        if spec == "pty":
            assert all(p.startswith("/dev/") for p in ports.values())
        else:
            base = int(serial_spec.rsplit(":", 1)[1])
            assert sorted(ports.values()) == [f"socket://127.0.0.1:{base}", f"socket://127.0.0.1:{base + 1}"]
        link = SerialLink([SerialRobot(r, PortSettings(u)) for r, u in ports.items()], SimulatedClock(), SETTINGS)
        deadline = time.monotonic() + 10
        seen: dict[str, Cell] = {}
        while len(seen) < 2 and time.monotonic() < deadline:
            for e in link.drain():
                if isinstance(e, events.StatusReport) and e.cell is not None:
                    seen[e.robot_id] = e.cell
            time.sleep(0.02)
        assert len(seen) == 2 and seen["robot-1"] != seen["robot-2"]
    finally:
        if link is not None:
            link.close()
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.parametrize("args, message", [
    (["--serial", "udp://x:1"], "--serial takes 'pty' or 'tcp://HOST:PORT'"),
    (["--serial", "pty", "--wander"], "drop --speed and --wander"),
    (["--serial", "pty", "--bit-errors", "2"], "bit_error_rate must be in [0, 1)"),
    (["--serial", "tcp://127.0.0.1:65535", "--robots", "2"], "past 65535"),
])
def test_fleet_emulate_serial_refuses_bad_options(args: list[str], message: str) -> None:
    proc = _emulate(*(["--robots", "1"] if "--robots" not in args else []), *args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert message in err
