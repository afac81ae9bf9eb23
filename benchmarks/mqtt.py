"""The full VDA 5050 stack under load: one master, N emulated vehicles, a local Mosquitto.

Unlike benchmarks/vda5050_master.py (scripted vehicles), the vehicles here are the
emulator's: drive units in paced worlds behind firmware_emulator/vda5050_vehicle.py, one
world per process, each vehicle with its own MQTT connection. The master (Vda5050Link)
gives every robot a job shuttling between two adjacent cells and extends it by one cell
on every CellReached, keeping three cells released ahead, as the fleet does.

Measured: messages per second the master handles, and the latency from a vehicle's state
that reports a node reached (published by the vehicle) to the order update that extends
its base (received by the vehicle), both on the vehicle side with CLOCK_MONOTONIC, which
all processes of the machine share.

Prints one JSON object. Usage:

    .venv/bin/python benchmarks/mqtt.py [--vehicles 100 1000] [--seconds 30] [--processes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.vda5050_master import start_broker  # noqa: E402
from drivers.commands import Job, Step  # noqa: E402
from drivers.events import CellReached  # noqa: E402
from drivers.vda5050.link import Vda5050Link  # noqa: E402
from drivers.vda5050.mqtt import TopicLayout  # noqa: E402
from maps.loader import parse_map  # noqa: E402
from maps.model import Cell  # noqa: E402

AHEAD = 3
COLUMNS = 10  # shuttle pairs per row: cells (3k, row) and (3k + 1, row), a free cell between pairs


def floor_map(robots: int):
    """An open floor with room for `robots` shuttles that never come near each other."""
    rows = -(-robots // COLUMNS)
    width, height = 3 * COLUMNS + 2, 2 * rows + 3
    lines = ["#" * width] + ["#" + "." * (width - 2) + "#"] * (height - 3) + ["#QW" + "." * (width - 4) + "#", "#" * width]
    layout = "\n".join(lines)
    station = f'[[stations]]\nid = "pick-1"\nkind = "pick"\nworking = [2, {height - 2}]\nqueue = [[1, {height - 2}]]\n' \
              'operator_side = "south"\n'
    return parse_map(f'name = "bench"\npitch = 1.0\nlayout = """\n{layout}\n"""\n\n{station}', "bench.toml")


def start_cells(robots: int) -> list[Cell]:
    return [Cell(1 + 3 * (k % COLUMNS), 2 + 2 * (k // COLUMNS)) for k in range(robots)]


# --- a vehicle process ---------------------------------------------------------------------------

def vehicles_main(port: int, interface: str, prefix: str, count: int, seconds: float) -> None:
    from firmware_emulator.vda5050_vehicle import MqttFloor
    from firmware_emulator.world import World
    from fleet.clock import WallClock
    from maps.model import Heading

    wmap = floor_map(count)
    world = World(wmap, WallClock(), seed=1, shelves={})
    for k, cell in enumerate(start_cells(count)):
        world.add_robot(f"{prefix}{k:04d}", cell, Heading.EAST)
    floor = MqttFloor(world, f"mqtt://127.0.0.1:{port}", manufacturer="bench",
                      layout=TopicLayout(interface_name=interface))
    latencies: list[float] = []
    for vehicle in floor.vehicles.values():
        _measure(vehicle, latencies)
    floor.start(timeout=30)
    floor.run(until=world.now() + seconds)
    floor.close()
    print(json.dumps({"latencies": latencies}), flush=True)


def _measure(vehicle, latencies: list[float]) -> None:
    """Time from the state that reports a new node to the next order update accepted."""
    reported = {"node": vehicle.last_node_sequence_id, "at": None}
    publish_state, on_order = vehicle.publish_state, vehicle.on_order

    def timed_publish() -> None:
        publish_state()
        if vehicle.last_node_sequence_id != reported["node"]:
            reported["node"], reported["at"] = vehicle.last_node_sequence_id, time.monotonic()

    def timed_order(order) -> None:
        before = (vehicle.order_id, vehicle.order_update_id)
        on_order(order)
        if reported["at"] is not None and before[0] == order.order_id \
                and vehicle.order_update_id == order.order_update_id > before[1]:
            latencies.append(time.monotonic() - reported["at"])
            reported["at"] = None

    vehicle.publish_state, vehicle.on_order = timed_publish, timed_order


# --- the master ----------------------------------------------------------------------------------

def run(vehicles: int, seconds: float, processes: int) -> dict:
    wmap = floor_map(-(-vehicles // processes))
    with tempfile.TemporaryDirectory() as folder:
        broker, port = start_broker(Path(folder))
        interface = f"emu{os.getpid()}"
        link = Vda5050Link(f"mqtt://127.0.0.1:{port}", wmap, layout=TopicLayout(interface_name=interface))
        try:
            assert link.start(timeout=10), "master did not connect"
            share = -(-vehicles // processes)
            workers = [
                subprocess.Popen([sys.executable, __file__, "--vehicle-process", str(port), interface, f"p{p}-",
                                  str(min(share, vehicles - p * share)), str(seconds)],
                                 stdout=subprocess.PIPE, text=True)
                for p in range(processes) if vehicles - p * share > 0
            ]
            pair: dict[str, tuple[Cell, Cell]] = {}
            last: dict[str, Cell] = {}
            received_before = link.mqtt.received
            start = time.monotonic()
            deadline = start + seconds + 60
            next_look = start
            while time.monotonic() < deadline and any(w.poll() is None for w in workers):
                if time.monotonic() >= next_look:  # new robots: give each its job
                    next_look = time.monotonic() + 0.2
                    for robot_id in link.robot_ids():
                        cell = link.session(robot_id).cell
                        if robot_id in pair or cell is None:
                            continue
                        a, b = cell, Cell(cell.x + 1, cell.y)
                        pair[robot_id] = (a, b)
                        path = tuple(Step(a if i % 2 == 0 else b) for i in range(AHEAD + 1))
                        link.send_job(robot_id, Job(f"job-{robot_id}", path))
                        last[robot_id] = path[-1].cell
                for event in link.drain():
                    if isinstance(event, CellReached) and event.job_id is not None:
                        a, b = pair[event.robot_id]
                        nxt = a if last[event.robot_id] == b else b
                        link.extend_job(event.robot_id, event.job_id, [Step(nxt)])
                        last[event.robot_id] = nxt
                time.sleep(0.005)
            elapsed = time.monotonic() - start
            handled = link.mqtt.received - received_before
            latencies: list[float] = []
            for worker in workers:
                out, _ = worker.communicate(timeout=120)
                latencies += json.loads(out.strip().splitlines()[-1])["latencies"]
            dropped = dict(link.mqtt.dropped)
        finally:
            link.close()
            broker.terminate()
            broker.wait(10)
    latencies.sort()

    def pick(q: float) -> float | None:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None

    return {
        "vehicles": vehicles,
        "adopted": len(pair),
        "messages_handled_per_s": round(handled / elapsed, 1),
        "updates_measured": len(latencies),
        "latency_ms_p50": pick(0.5),
        "latency_ms_p99": pick(0.99),
        "dropped": {str(k): v for k, v in dropped.items()},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--vehicle-process":
        port, interface, prefix, count, seconds = sys.argv[2:7]
        vehicles_main(int(port), interface, prefix, int(count), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    results = [run(n, args.seconds, args.processes) for n in args.vehicles]
    print(json.dumps({"benchmark": "mqtt", "seconds": args.seconds, "processes": args.processes, "runs": results}))


if __name__ == "__main__":
    main()
