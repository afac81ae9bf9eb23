"""What the VDA 5050 load benchmarks share: a private broker, the master's loop, the figures.

benchmarks/vda5050_master.py (scripted vehicles) and benchmarks/mqtt.py (emulated ones)
differ only in the vehicles they start; the master side is this: one Vda5050Link gives
every robot adopted a job shuttling between two adjacent cells and extends it by one cell
on every CellReached, keeping AHEAD cells released ahead, as the fleet does. The vehicle
processes measure the latency (state "node reached" published -> order update received,
CLOCK_MONOTONIC, which all processes of the machine share) and print it with their own
CPU time as the last line of their output (`report`).

The master also times two shares of it: the way in, from a "node reached" state's
header timestamp (stamped by the vehicle as it publishes) to the moment the master's
MQTT client hands the state over (UTC, the one system clock of the machine, millisecond
resolution), and its own, from that moment (the event's time, the link's clock) to the
moment the update is handed back to the client. The rest is the way out and the
vehicle's own handling.

CPU is counted per process group, because on a small machine the broker and the
emulated vehicles compete with the master for the same cores: the master's own process
(getrusage), the vehicle processes (their report) and the broker (/proc/PID/stat).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator

from drivers.commands import Job, Step
from drivers.events import CellReached
from drivers.vda5050.link import Vda5050Link
from drivers.vda5050.messages import State, parse_timestamp
from drivers.vda5050.mqtt import Received
from fleet.clock import Clock
from maps.model import Cell

AHEAD = 3  # cells released ahead of each vehicle


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def private_broker() -> Iterator[Broker]:
    """A Mosquitto of our own on a free loopback port, stopped on leaving."""
    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = Path(folder) / "mosquitto.conf"
        config.write_text(("user root\n" if os.geteuid() == 0 else "") + f"listener {port} 127.0.0.1\n"
                          "allow_anonymous true\npersistence false\nmax_queued_messages 100000\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                raise RuntimeError("mosquitto did not start")
            yield Broker(process, port)
        finally:
            process.terminate()
            process.wait(10)


def answered(reached: dict[int, float], last_released: int, now: float, latencies: list[float]) -> None:
    """On the vehicle side: an update now holds base nodes up to index `last_released`.

    The master extends by one node per node reached and keeps AHEAD released ahead, so
    reaching node k is answered by the update that releases node k + AHEAD. Pairing by
    index matters once latency exceeds the time between nodes: the update arriving then
    answers an earlier node, and timing it from the latest one would hide the backlog.
    """
    for index in [k for k in reached if k + AHEAD <= last_released]:
        latencies.append(now - reached.pop(index))


def report(latencies: list[float]) -> None:
    """A vehicle process's last line: its latency samples (s) and its CPU seconds."""
    print(json.dumps({"latencies": latencies, "cpu_s": own_cpu_seconds()}), flush=True)


def percentile(ordered: list[float], q: float) -> float | None:
    """The q-quantile in ms of sorted samples in seconds (nearest rank), None if none."""
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def drive(
    link: Vda5050Link,
    clock: Clock,
    broker: Broker,
    workers: list[subprocess.Popen[str]],
    shuttle: Callable[[Cell], tuple[Cell, Cell]],
    seconds: float,
    grace: float,
) -> dict[str, object]:
    """Run the master until the vehicle processes end (at most `seconds` + `grace`) and
    return the figures. `clock` is the link's; `shuttle` gives the two cells a robot
    standing on a cell goes back and forth between."""
    pair: dict[str, tuple[Cell, Cell]] = {}
    last: dict[str, Cell] = {}
    waiting: set[str] = set()  # adopted, not yet localised
    inside: list[float] = []  # s from state handed over to update handed back, at the master
    way_in: list[float] = []  # s from a vehicle stamping a "node reached" state to its hand-over
    last_node: dict[str, int] = {}
    hand_over = link.mqtt._on_message

    def timed_hand_over(received: Received) -> None:
        state = received.message
        if isinstance(state, State) and last_node.get(state.serial_number, 0) != state.last_node_sequence_id:
            last_node[state.serial_number] = state.last_node_sequence_id
            way_in.append((datetime.now(UTC) - parse_timestamp(state.timestamp)).total_seconds())
        hand_over(received)

    link.mqtt._on_message = timed_hand_over
    received_before = link.mqtt.received
    cpu_before = own_cpu_seconds()
    start = time.monotonic()
    deadline = start + seconds + grace
    next_look = start
    running = True
    while running and time.monotonic() < deadline:
        if time.monotonic() >= next_look:  # every 0.2 s: vehicles still running? new robots: give each its job
            next_look = time.monotonic() + 0.2
            running = any(w.poll() is None for w in workers)  # a waitpid each: not at every 5 ms pass
            waiting.update(robot_id for robot_id in link.robot_ids() if robot_id not in pair)
            for robot_id in list(waiting):
                cell = link.session(robot_id).cell
                if cell is None:
                    continue
                waiting.discard(robot_id)
                a, b = pair[robot_id] = shuttle(cell)
                path = tuple(Step(a if i % 2 == 0 else b) for i in range(AHEAD + 1))
                link.send_job(robot_id, Job(f"job-{robot_id}", path))
                last[robot_id] = path[-1].cell
        for event in link.drain():
            if isinstance(event, CellReached) and event.job_id is not None:
                a, b = pair[event.robot_id]
                nxt = a if last[event.robot_id] == b else b
                link.extend_job(event.robot_id, event.job_id, [Step(nxt)])
                inside.append(clock.now() - event.time)
                last[event.robot_id] = nxt
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    handled = link.mqtt.received - received_before
    master_cpu = own_cpu_seconds() - cpu_before
    broker_cpu = broker.cpu_seconds()
    latencies: list[float] = []
    vehicles_cpu = 0.0
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        reported = json.loads(out.strip().splitlines()[-1])
        latencies += reported["latencies"]
        vehicles_cpu += reported["cpu_s"]
    latencies.sort()
    inside.sort()
    way_in.sort()
    return {
        "adopted": len(pair),
        "wall_s": round(elapsed, 1),
        "messages_handled_per_s": round(handled / elapsed, 1),
        "master_cpu_us_per_message": round(1e6 * master_cpu / handled, 1) if handled else None,
        "updates_measured": len(latencies),
        "latency_ms_p50": percentile(latencies, 0.5),
        "latency_ms_p99": percentile(latencies, 0.99),
        "way_in_ms_p50": percentile(way_in, 0.5),
        "way_in_ms_p99": percentile(way_in, 0.99),
        "inside_master_ms_p50": percentile(inside, 0.5),
        "inside_master_ms_p99": percentile(inside, 0.99),
        "cpu_s": {"master": round(master_cpu, 1), "vehicles": round(vehicles_cpu, 1), "broker": round(broker_cpu, 1)},
        "dropped": {str(k): v for k, v in link.mqtt.dropped.items()},
    }
