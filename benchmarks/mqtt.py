"""The full VDA 5050 stack under load: one master, N emulated vehicles, a local Mosquitto.

Unlike benchmarks/vda5050_master.py (scripted vehicles), the vehicles here are the
emulator's: drive units in paced worlds behind firmware_emulator/vda5050_vehicle.py, one
world per process, each vehicle with its own MQTT connection. The master (Vda5050Link)
gives every robot a job shuttling between two adjacent cells and extends it by one cell
on every CellReached, keeping three cells released ahead, as the fleet does.

Measured (benchmarks/vda5050_harness.py, shared with the scripted benchmark): messages per
second the master handles, the latency from a vehicle's state that reports a node reached
(published by the vehicle) to the order update that extends its base (received by the
vehicle), and the CPU seconds of the master, the vehicle processes and the broker: on a
small machine the three compete for the same cores.

Prints one JSON object. Usage:

    .venv/bin/python benchmarks/mqtt.py [--vehicles 100 1000] [--seconds 30] [--processes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.vda5050_harness import answered, drive, private_broker, report  # noqa: E402
from drivers.vda5050.link import Vda5050Link  # noqa: E402
from drivers.vda5050.mqtt import TopicLayout  # noqa: E402
from fleet.clock import WallClock  # noqa: E402
from maps.loader import parse_map  # noqa: E402
from maps.model import Cell  # noqa: E402

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
    report(latencies)


def _measure(vehicle, latencies: list[float]) -> None:
    """Time from the state that reports a node to the order update that releases the node
    its extension added (see vda5050_harness.answered)."""
    reached: dict[int, float] = {}
    reported = {"node": vehicle.last_node_sequence_id}
    publish_state, on_order = vehicle.publish_state, vehicle.on_order

    def timed_publish() -> None:
        publish_state()
        if vehicle.last_node_sequence_id != reported["node"]:
            reported["node"] = vehicle.last_node_sequence_id
            reached.setdefault(vehicle.last_node_sequence_id // 2, time.monotonic())

    def timed_order(order) -> None:
        on_order(order)
        if vehicle.order_id == order.order_id and vehicle.order_update_id == order.order_update_id and vehicle.base:
            answered(reached, vehicle.base[-1].sequence_id // 2, time.monotonic(), latencies)

    vehicle.publish_state, vehicle.on_order = timed_publish, timed_order


# --- the master ----------------------------------------------------------------------------------

def run(vehicles: int, seconds: float, processes: int) -> dict:
    wmap = floor_map(-(-vehicles // processes))
    with private_broker() as broker:
        interface = f"emu{os.getpid()}"
        clock = WallClock()
        link = Vda5050Link(broker.url, wmap, layout=TopicLayout(interface_name=interface), clock=clock)
        try:
            assert link.start(timeout=10), "master did not connect"
            share = -(-vehicles // processes)
            workers = [
                subprocess.Popen([sys.executable, __file__, "--vehicle-process", str(broker.port), interface, f"p{p}-",
                                  str(min(share, vehicles - p * share)), str(seconds)],
                                 stdout=subprocess.PIPE, text=True)
                for p in range(processes) if vehicles - p * share > 0
            ]
            figures = drive(link, clock, broker, workers, lambda cell: (cell, Cell(cell.x + 1, cell.y)), seconds, grace=60)
        finally:
            link.close()
    return {"vehicles": vehicles, **figures}


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
