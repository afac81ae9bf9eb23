"""How the serial link performs over real pseudo-terminals, on a clean and a noisy line.

A master (SerialLink) and a robot endpoint talk through two ptys and a relay, the relay
optionally injecting bit errors and dropped bytes both ways. Measured:

- handshake: from opening the link to the robot online (HELLO/IDENTITY), seconds;
- command latency: from link.instant() to the robot's firmware receiving the command,
  one at a time (each sequenced and acknowledged), milliseconds p50/p95;
- events per second: robot events (CELL_REACHED) sent back to back, as the fleet drains
  them; stop-and-wait makes this one round trip per event.

Prints one JSON object (medians of --repeats runs for the handshake). Usage:

    .venv/bin/python benchmarks/serial_link.py [--commands 200] [--events 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers import events  # noqa: E402
from drivers.commands import InstantCommand, InstantKind  # noqa: E402
from drivers.serial import messages as wire  # noqa: E402
from drivers.serial.line import LineFaults, Relay  # noqa: E402
from drivers.serial.link import LinkSettings, SerialLink, SerialRobot  # noqa: E402
from drivers.serial.port import PortSettings  # noqa: E402
from drivers.serial.robot import RobotEndpoint  # noqa: E402
from fleet.clock import WallClock  # noqa: E402
from maps.model import Cell, Heading  # noqa: E402

#: Bit errors at 1e-4 and dropped bytes at 1e-4, both ways: a poor but usable cable.
NOISE = {"bit_error_rate": 1e-4, "drop_rate": 1e-4}


class Firmware:
    """Records when each command arrives; reports a fixed status."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self._start = time.monotonic()

    def command(self, message: wire.Message) -> None:
        with self.cond:
            self.arrived[getattr(message, "command_id", "")] = time.monotonic()
            self.cond.notify_all()

    def status(self) -> wire.Status:
        return wire.Status(
            uptime_ms=int((time.monotonic() - self._start) * 1000), cell=Cell(1, 1), heading=Heading.EAST,
            offset_x=0.0, offset_y=0.0, x=1.0, y=1.0, theta=0.0, speed=0.0, driving=False, paused=False,
            stopped=False, charging=False, charge=0.9, shelf_id=None, weight_kg=0.0, job_id=None,
            step_index=None, steps_total=0, rx_rejected=0, errors=(),
        )  # fmt: skip

    def watchdog_expired(self) -> None: ...

    def watchdog_fed(self) -> None: ...


class Line:
    def __init__(self, noisy: bool, seed: int) -> None:
        faults = (LineFaults(**NOISE, seed=seed), LineFaults(**NOISE, seed=seed + 1)) if noisy else (None, None)
        self.relay = Relay(*faults)
        self.firmware = Firmware()
        self.robot = RobotEndpoint(PortSettings(self.relay.b.path), self.firmware, "r1")
        self.robot.start()
        started = time.monotonic()
        self.link = SerialLink([SerialRobot("r1", PortSettings(self.relay.a.path))], WallClock(), LinkSettings())
        while not self.link.online("r1"):
            time.sleep(0.001)
        self.handshake = time.monotonic() - started

    def close(self) -> None:
        self.link.close()
        self.robot.close()
        self.relay.close()


def command_latencies(line: Line, count: int) -> list[float]:
    latencies = []
    fw = line.firmware
    for k in range(count):
        command_id = f"c{k}"
        sent = time.monotonic()
        line.link.instant("r1", InstantCommand(InstantKind.STATUS, command_id=command_id))
        with fw.cond:
            if not fw.cond.wait_for(lambda: command_id in fw.arrived, timeout=5.0):
                raise RuntimeError(f"command {command_id} never arrived")
        latencies.append((fw.arrived[command_id] - sent) * 1000)
    return latencies


def events_per_second(line: Line, count: int) -> float:
    line.link.drain()
    started = time.monotonic()
    for k in range(count):
        line.robot.send(wire.CellReached(Cell(1, 1), Heading.EAST, "j", k))
    got = 0
    while got < count:
        got += sum(isinstance(e, events.CellReached) for e in line.link.drain())
        if time.monotonic() - started > 120:
            raise RuntimeError(f"only {got} of {count} events in 120 s")
        time.sleep(0.001)
    return count / (time.monotonic() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure(noisy: bool, args: argparse.Namespace) -> dict:
    handshakes = []
    for r in range(args.repeats):
        line = Line(noisy, seed=10 * r)
        handshakes.append(line.handshake)
        if r < args.repeats - 1:
            line.close()
    try:
        latencies = command_latencies(line, args.commands)
        rate = events_per_second(line, args.events)
        counters = line.link.counters("r1")
    finally:
        line.close()
    return {
        "handshake_s_median": round(statistics.median(handshakes), 4),
        "command_latency_ms_p50": round(percentile(latencies, 50), 2),
        "command_latency_ms_p95": round(percentile(latencies, 95), 2),
        "events_per_s": round(rate, 1),
        "retransmitted": counters["retransmitted"],
        "rx_rejected": counters["rx_crc"] + counters["rx_cobs"] + counters["rx_short"] + counters["rx_long"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({
        "line": "pty relay (a pty does not throttle to a baud rate), default link settings",
        "noise": NOISE,
        "commands": args.commands, "events": args.events, "repeats": args.repeats,
        "clean": measure(False, args),
        "noisy": measure(True, args),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
