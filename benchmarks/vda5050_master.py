"""The VDA 5050 master under load: N scripted vehicles in separate processes, one master.

Measures the driver stack (MQTT link, parsing, sessions, the RobotLink) on a private
Mosquitto: messages per second the master handles, and the latency from a vehicle's state
"node reached" to the order update that extends its base (the fleet here extends at once
on every CellReached, keeping three cells released ahead). The vehicles are scripted (one
MQTT connection per process, speaking for many vehicles): they accept every update,
echo it, and move to the next node every `--hop` seconds; the emulated vehicles replace
them in the benchmark of the full stack (benchmarks/mqtt.py). The master's loop, the
latency measure and the CPU seconds per process group (master, vehicles, broker) are
benchmarks/vda5050_harness.py, shared by both.

Prints one JSON object. Usage:

    .venv/bin/python benchmarks/vda5050_master.py [--vehicles 100 1000] [--seconds 20] [--hop 1.0] [--processes 4]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from benchmarks.vda5050_harness import answered, drive, private_broker, report  # noqa: E402
from drivers.vda5050 import messages as m  # noqa: E402
from drivers.vda5050.link import Vda5050Link  # noqa: E402
from drivers.vda5050.mqtt import TopicLayout  # noqa: E402
from fleet.clock import WallClock  # noqa: E402
from maps.loader import load_map  # noqa: E402
from maps.model import Cell  # noqa: E402

MAP = ROOT / "tests" / "data" / "tiny.toml"
MANUFACTURER = "bench"
A, B = Cell(2, 3), Cell(3, 3)  # two adjacent floor cells: vehicles shuttle between them


# --- the vehicle processes ---------------------------------------------------------------------

def vehicles_main(port: int, interface: str, first: int, count: int, seconds: float, hop: float) -> None:
    """Runs `count` scripted vehicles; prints their latency samples as JSON at the end."""
    warehouse = load_map(MAP)
    layout = TopicLayout(interface_name=interface)
    lock = threading.Lock()
    timers: list[tuple[float, int, str]] = []
    route: dict[str, list[tuple[str, int]]] = {}  # remaining nodes (id, seq) per vehicle
    where: dict[str, tuple[str, int]] = {}
    order_of: dict[str, tuple[str, int]] = {}
    reached_at: dict[str, dict[int, float]] = {}  # node index reached -> when, until its extension comes
    finished_instants: dict[str, list[str]] = {}  # instant actionIds to report FINISHED
    header_ids: dict[tuple[str, str], int] = {}
    latencies: list[float] = []
    serials = [f"V{n:05d}" for n in range(first, first + count)]
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)

    def publish(serial: str, topic: str, message: m.Wire, qos: int = 0) -> None:
        key = (serial, topic)
        header_ids[key] = header_ids.get(key, -1) + 1
        stamped = message.model_copy(update={"header_id": header_ids[key],
                                             "timestamp": m.format_timestamp(datetime.now(UTC))})
        client.publish(f"{layout.base}/{MANUFACTURER}/{serial}/{topic}", m.encode(stamped), qos=qos)

    def header(serial: str) -> dict:
        return {"header_id": 0, "timestamp": "1970-01-01T00:00:00.000Z", "version": "2.1.0",
                "manufacturer": MANUFACTURER, "serial_number": serial}

    def state(serial: str) -> m.State:
        node_id, seq = where[serial]
        order_id, update = order_of.get(serial, ("", 0))
        return m.State(**header(serial), order_id=order_id, order_update_id=update, last_node_id=node_id,
                       last_node_sequence_id=seq, driving=bool(route.get(serial)),
                       operating_mode=m.OperatingMode.AUTOMATIC,
                       node_states=[m.NodeState(node_id=n, sequence_id=s, released=True)
                                    for n, s in route.get(serial, [])],
                       edge_states=[],
                       action_states=[m.ActionState(action_id=a, action_status=m.ActionStatus.FINISHED)
                                      for a in finished_instants.get(serial, [])],
                       battery_state=m.BatteryState(battery_charge=80.0, charging=False), errors=[],
                       safety_state=m.SafetyState(e_stop=m.EStop.NONE, field_violation=False))

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        serial = message.topic.split("/")[-2]
        if message.topic.endswith("/instantActions"):
            with lock:  # stateRequest, factsheetRequest: done at once (no factsheet here)
                actions = m.decode(m.InstantActions, message.payload).actions
                finished_instants.setdefault(serial, []).extend(a.action_id for a in actions)
                publish(serial, "state", state(serial))
            return
        order = m.decode(m.Order, message.payload)
        with lock:
            known = order_of.get(serial)
            if known is not None and known[0] == order.order_id and known[1] >= order.order_update_id:
                return  # a resend of what we hold
            if known is not None and known[0] == order.order_id:
                answered(reached_at.get(serial, {}), order.nodes[-1].sequence_id // 2, now, latencies)
            fresh = known is None or known[0] != order.order_id
            # It stands on a new order's first node; an update's first node is the stitch.
            ahead = [(n.node_id, n.sequence_id) for n in order.nodes[1:]]
            route[serial] = ahead if fresh else route.get(serial, []) + ahead
            order_of[serial] = (order.order_id, order.order_update_id)
            publish(serial, "state", state(serial))  # the echo
            if fresh:
                heapq.heappush(timers, (now + hop, first, serial))

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [(f"{layout.base}/{MANUFACTURER}/{serial}/{topic}", 0) for serial in serials
         for topic in ("order", "instantActions")])
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.5)
    with lock:
        for serial in serials:
            where[serial] = (warehouse.qr_id(A), 0)
            publish(serial, "connection", m.Connection(**header(serial), connection_state=m.ConnectionState.ONLINE), qos=1)
        for serial in serials:
            publish(serial, "state", state(serial))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with lock:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, _, serial = heapq.heappop(timers)
                if route.get(serial):
                    where[serial] = route[serial].pop(0)
                    publish(serial, "state", state(serial))
                    reached_at.setdefault(serial, {})[where[serial][1] // 2] = time.monotonic()
                heapq.heappush(timers, (now + hop, first, serial))
            sleep = (timers[0][0] - now) if timers else 0.01
        time.sleep(max(0.0005, min(sleep, 0.01)))
    client.disconnect()
    client.loop_stop()
    report(latencies)


# --- the master ----------------------------------------------------------------------------------

def run(vehicles: int, seconds: float, hop: float, processes: int) -> dict:
    with private_broker() as broker:
        interface = f"bench{os.getpid()}"
        clock = WallClock()
        link = Vda5050Link(broker.url, load_map(MAP), layout=TopicLayout(interface_name=interface), clock=clock,
                           resend_interval=1.0)
        try:
            assert link.start(timeout=10), "master did not connect"
            share = -(-vehicles // processes)
            workers = [
                subprocess.Popen([sys.executable, __file__, "--vehicle-process", str(broker.port), interface,
                                  str(first), str(min(share, vehicles - first)), str(seconds), str(hop)],
                                 stdout=subprocess.PIPE, text=True)
                for first in range(0, vehicles, share)
            ]
            figures = drive(link, clock, broker, workers, lambda cell: (A, B), seconds, grace=5)
        finally:
            link.close()
    return {"vehicles": vehicles, **figures}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--vehicle-process":
        port, interface, first, count, seconds, hop = sys.argv[2:8]
        vehicles_main(int(port), interface, int(first), int(count), float(seconds), float(hop))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hop", type=float, default=1.0, help="seconds from one node to the next")
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    results = [run(n, args.seconds, args.hop, args.processes) for n in args.vehicles]
    print(json.dumps({"benchmark": "vda5050_master", "seconds": args.seconds, "hop_s": args.hop,
                      "processes": args.processes, "runs": results}))


if __name__ == "__main__":
    main()
