"""The control-room service under load (issue 7): `fleet serve` in its own process with N
robots on a map, while this process (an operator's browser) polls the API and follows
the live feed. Prints one JSON object: API latency p50/p99 per route (ms), live feed rate
and size, control-cycle time and loop lag (from /metrics), robots driving (median of the
polls of /api/robots), fleet cells moved per wall second (summed over the robots' cell
changes between those polls), load average and CPU seconds per process group.

Two ways to give the service its robots (`--links`):
- `inprocess`: emulated inside the service's process (the in-process link, simulated time
  paced to wall time x --speed), so their physics competes with the API for the same
  interpreter;
- `vda5050`: VDA 5050 vehicles in other processes, as a warehouse has them. A private
  Mosquitto (benchmarks/vda5050_harness.py) and --vehicle-processes processes, each one
  paced world (firmware_emulator/vda5050_vehicle.py) with its share of the robots, each
  robot its own MQTT connection; the service adopts them from the [broker] section of its
  configuration and runs on wall time. Every world holds every shelf where the service's
  scenario puts them (as `fleet demo` does), and a shelf lifted or lowered in one world is
  lifted or lowered in the others too (`ShelfMirror`), so a robot sent for a shelf another
  process's robot put down finds it, and a loaded robot does not hit a shelf that is gone.

The work is the real scheduler's: generated orders (--orders-per-hour) and inbound notes
(--notes-per-hour), released to the ports every --release-every seconds. The scheduler
sends a robot only for work, and the ports take a few robots each at a time, so of many
robots only some drive: `robots_driving_median` says how many.

    .venv/bin/python benchmarks/service_api.py --robots 1000 --map large --seconds 30
    .venv/bin/python benchmarks/service_api.py --links vda5050 --robots 1000 --map large --seconds 60 \\
        --orders-per-hour 20000 --notes-per-hour 1000 --release-every 5 --warm-up 180
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.vda5050_harness import private_broker, process_cpu_seconds  # noqa: E402
from fleet.service.auth import token_digest  # noqa: E402

TOKEN = "bench-token-0123456789"
#: Fleet hours of generated orders and notes: more than a run needs (generating the 8 h
#: default at a high rate takes each vehicle process seconds of CPU).
GENERATED_HOURS = 0.5


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def metric(text: str, name: str) -> float:
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))


def scrape(client: httpx.Client) -> dict[str, float]:
    """From /metrics: control cycles' summed wall time and count, the loop's lag now, and
    the link's events received and commands sent so far."""
    text = client.get("/metrics").text
    return {"cycle_sum": metric(text, "fleet_cycle_seconds_sum"), "cycles": metric(text, "fleet_cycle_seconds_count"),
            "lag": metric(text, "fleet_loop_lag_seconds"),
            "received": metric(text, 'fleet_messages_total{direction="received"}'),
            "sent": metric(text, 'fleet_messages_total{direction="sent"}')}


def config_text(args: argparse.Namespace, tmp: str, broker_url: str | None) -> str:
    robots = (f'[broker]\nenabled = true\nurl = "{broker_url}"\ninterface = "bench{uuid.uuid4().hex[:8]}"\n'
              if broker_url else f'[robots]\nemulated = {args.robots}\n[runtime]\nspeed = {args.speed}\n')
    return (f'[map]\nname = "{args.map}"\n{robots}'
            f'[database]\nurl = "sqlite:///{tmp}/fleet.db"\n[console]\nport = 0\n'
            f'[warehouse]\norders_per_hour = {args.orders_per_hour}\ninbound_notes_per_hour = {args.notes_per_hour}\n'
            f'generated_hours = {GENERATED_HOURS}\nrelease_every_s = {args.release_every}\n'
            f'[[users]]\nname = "bench"\nrole = "operator"\ntoken_sha256 = "{token_digest(TOKEN)}"\n')


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--vehicle-process":
        config, first, count, total, index = sys.argv[2:7]
        vehicles_main(Path(config), int(first), int(count), int(total), int(index))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", type=int, default=1000)
    parser.add_argument("--map", default="large")
    parser.add_argument("--links", choices=["inprocess", "vda5050"], default="inprocess")
    parser.add_argument("--vehicle-processes", type=int, default=4, help="with --links vda5050")
    parser.add_argument("--seconds", type=float, default=30.0, help="wall seconds of load after warm-up")
    parser.add_argument("--warm-up", type=float, default=0.0,
                        help="wall seconds between the first robot driving and the measurement (the first trips "
                             "are all fetches: shelves reach the ports and come back only later)")
    parser.add_argument("--speed", type=float, default=1.0, help="with --links inprocess (real links run at 1)")
    parser.add_argument("--orders-per-hour", type=float, default=6000.0,
                        help="generated orders (the scheduler sends robots only for work)")
    parser.add_argument("--notes-per-hour", type=float, default=0.0, help="generated inbound notes (at most 1000)")
    parser.add_argument("--release-every", type=float, default=30.0, help="seconds between order release rounds")
    args = parser.parse_args()
    if args.links == "vda5050" and args.speed != 1:
        parser.error("--speed: VDA 5050 vehicles live in wall time")
    if args.vehicle_processes < 1:
        parser.error("--vehicle-processes must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        if args.links == "inprocess":
            result = serve_and_measure(args, tmp, None)
        else:
            with private_broker() as broker:
                result = serve_and_measure(args, tmp, broker)
    print(json.dumps(result))


def serve_and_measure(args: argparse.Namespace, tmp: str, broker) -> dict:
    config = Path(tmp) / "fleet.toml"
    config.write_text(config_text(args, tmp, broker.url if broker else None))
    built = time.perf_counter()
    vehicles: list[subprocess.Popen] = []
    if broker is not None:
        share = -(-args.robots // args.vehicle_processes)
        for p in range(args.vehicle_processes):
            count = min(share, args.robots - p * share)
            if count > 0:
                with (Path(tmp) / f"vehicles-{p}.log").open("w") as log:
                    vehicles.append(subprocess.Popen(
                        [sys.executable, __file__, "--vehicle-process", str(config), str(p * share), str(count),
                         str(args.robots), str(p)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    with (Path(tmp) / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "serve", "--config", str(config)], cwd=ROOT,
                                stderr=log, stdout=subprocess.DEVNULL)
    try:
        url = None
        while url is None:
            if m := re.search(r"console at (http://\S+)/", (Path(tmp) / "serve.log").read_text()):
                url = m.group(1)
            elif proc.poll() is not None or any(v.poll() is not None for v in vehicles):
                raise SystemExit(f"a process exited early; logs:\n{logs(tmp)}")
            time.sleep(0.2)
        pids = {"service": [proc.pid], "vehicles": [v.pid for v in vehicles],
                "broker": [broker.process.pid] if broker else []}
        result = measure(url, args, built, pids)
        result["vehicle_processes_alive"] = sum(v.poll() is None for v in vehicles)
    finally:
        proc.terminate()
        proc.wait(30)
        for v in vehicles:
            v.terminate()
        for v in vehicles:
            v.wait(30)
    if vehicles:  # each vehicle process's last line: what its world saw (a crashed one has none)
        seen = [_last_json(Path(tmp) / f"vehicles-{p}.log") for p in range(len(vehicles))]
        result["emulator"] = None if None in seen else {
            key: sum(s[key] for s in seen) for key in ("collisions", "laser_stops", "shelf_moves_mirrored")}
    return result


def _last_json(log: Path) -> dict | None:
    lines = log.read_text().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None  # a traceback: the process died before its summary


def logs(tmp: str) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(Path(tmp).glob("*.log")))


def watched_robot(client: httpx.Client, timeout: float = 300.0) -> str:
    """The first robot the scheduler sets driving (orders come first, then a release
    round), whose planned cells the live feed is asked for, as an operator's selection."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        driving = client.get("/api/robots", params={"state": "driving"}).json()
        if driving:
            return driving[0]["id"]
        time.sleep(0.5)
    raise SystemExit(f"no robot was driving {timeout:.0f} s after start: no orders, or the scheduler is stuck")


def adopted(client: httpx.Client, robots: int, timeout: float = 600.0) -> None:
    """Wait until every robot is in the service's motion control (VDA 5050 vehicles join
    as they come ONLINE and report where they stand)."""
    deadline = time.perf_counter() + timeout
    while (n := len(client.get("/api/robots").json())) < robots:
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {n} of {robots} robots adopted {timeout:.0f} s after start")
        time.sleep(1.0)


def cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {group: sum(process_cpu_seconds(pid) for pid in members) for group, members in pids.items()}


def measure(url: str, args: argparse.Namespace, built: float, pids: dict[str, list[int]]) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client = httpx.Client(base_url=url, headers=headers, timeout=30)
    while True:
        try:
            if client.get("/api/health").json()["cycle"] >= 2:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    startup = time.perf_counter() - built
    adopted(client, args.robots)
    adopted_s = time.perf_counter() - built
    first_robot = watched_robot(client)
    working_s = time.perf_counter() - built
    feed = {"messages": 0, "bytes": 0, "robots": 0, "first_bytes": 0}
    stop = threading.Event()

    def follow() -> None:
        from websockets.sync.client import connect
        with connect(url.replace("http", "ws") + "/api/live", max_size=None) as ws:
            ws.send(orjson.dumps({"token": TOKEN}).decode())
            ws.send(orjson.dumps({"watch": first_robot}).decode())
            feed["first_bytes"] = len(ws.recv())  # the full state, sent once
            while not stop.is_set():
                try:
                    raw = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                feed["messages"] += 1
                feed["bytes"] += len(raw)
                feed["robots"] += len(orjson.loads(raw).get("robots", {}))

    time.sleep(args.warm_up)
    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    time.sleep(2.0)
    health0 = client.get("/api/health").json()
    metrics0 = scrape(client)
    cpu0, load0 = cpu(pids), os.getloadavg()
    routes: dict[str, list[float]] = {"/api/health": [], f"/api/robots/{first_robot}": [], "/api/robots?state=error": [],
                                      "/api/robots": [], "/api/alarms?active=true": [], "/api/stations": []}
    driving: list[int] = []
    cells_moved = 0
    where: dict[str, tuple[int, int]] = {}
    lags: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        for route, times in routes.items():
            t0 = time.perf_counter()
            response = client.get(route)
            times.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
            if route == "/api/robots":  # the operator's robot panel: count what it shows
                rows = response.json()
                driving.append(sum(r["state"] == "driving" for r in rows))
                for r in rows:
                    cell = (r["cell"]["x"], r["cell"]["y"])
                    if r["id"] in where:
                        before = where[r["id"]]
                        cells_moved += abs(cell[0] - before[0]) + abs(cell[1] - before[1])
                    where[r["id"]] = cell
        if len(routes["/api/health"]) % 20 == 0:
            lags.append(scrape(client)["lag"])
        time.sleep(0.05)  # an operator's browser, not a flood
    wall = time.perf_counter() - started
    cpu1, load1 = cpu(pids), os.getloadavg()
    stop.set()
    watcher.join(3)
    health1 = client.get("/api/health").json()
    metrics1 = scrape(client)
    states: dict[str, int] = {}
    for robot in client.get("/api/robots").json():
        states[robot["state"]] = states.get(robot["state"], 0) + 1
    all_times = [t for times in routes.values() for t in times]
    lags.append(metrics1["lag"])
    cycles = metrics1["cycles"] - metrics0["cycles"]
    return {
        "links": args.links, "map": args.map, "robots": args.robots,
        "vehicle_processes": len(pids["vehicles"]) or None, "speed": args.speed,
        "orders_per_hour": args.orders_per_hour, "notes_per_hour": args.notes_per_hour,
        "release_every_s": args.release_every, "warm_up_s": args.warm_up,
        "startup_s": round(startup, 1), "adopted_s": round(adopted_s, 1), "first_driving_s": round(working_s, 1),
        "wall_s": round(wall, 1), "fleet_s": round(health1["time"] - health0["time"], 1),
        "realtime_factor": round((health1["time"] - health0["time"]) / wall, 2),
        "cycles": int(cycles),
        "cycle_mean_ms": round(1000 * (metrics1["cycle_sum"] - metrics0["cycle_sum"]) / max(1, cycles), 1),
        "link_events_in_per_s": round((metrics1["received"] - metrics0["received"]) / wall, 1),
        "link_commands_out_per_s": round((metrics1["sent"] - metrics0["sent"]) / wall, 1),
        "loop_lag_s": {"median": round(statistics.median(lags), 2), "max": round(max(lags), 2)},
        "api_ms": {route: {"n": len(t), "p50": round(statistics.median(t), 1), "p99": round(percentile(t, 0.99), 1)}
                   for route, t in routes.items()},
        "api_all_ms": {"p50": round(statistics.median(all_times), 1), "p99": round(percentile(all_times, 0.99), 1)},
        "live_feed": {"first_message_kb": round(feed["first_bytes"] / 1024, 1),
                      "messages_per_s": round(feed["messages"] / wall, 1), "kb_per_s": round(feed["bytes"] / 1024 / wall, 1),
                      "robot_rows_per_message": round(feed["robots"] / max(1, feed["messages"]), 1)},
        "robots_driving_median": statistics.median(driving), "robots_driving_max": max(driving),
        "cells_moved_per_s": round(cells_moved / wall, 1),
        "robot_states_at_end": states,
        "load_average": {"start": [round(v, 2) for v in load0], "end": [round(v, 2) for v in load1]},
        "cpu_s": {group: round(cpu1[group] - cpu0[group], 1) for group in cpu0},
    }


# --- a vehicle process (--links vda5050) ----------------------------------------------------------

class ShelfMirror:
    """Keeps the shelves of this process's world where the other processes' robots put
    them: every lift and lower in this world is published on the broker, and every one
    published by another process is applied here, under the floor's lock.

    One world per process is what lets the vehicles use more than one interpreter, but a
    world is also the floor's physics: without this a robot of process B, sent for a shelf
    that a robot of process A set down on another cell, would find no shelf there, and a
    loaded robot of B would hit a shelf that in A was carried away long ago. World has no
    public way for a shelf to move without one of its robots, so this sets its shelf grid.
    """

    TOPIC = "fleetbench/shelves"

    def __init__(self, world, lock, broker_url: str, index: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from drivers.vda5050.mqtt import BrokerConfig

        self.world, self.lock, self.index = world, lock, index
        self.applied = 0  # lifts and set-downs of other processes' robots applied here
        config = BrokerConfig.from_url(broker_url)
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._apply
        self.client.connect(config.host, config.port)
        self.client.subscribe(f"{self.TOPIC}/#", qos=1)
        self.client.loop_start()
        lift, lower = world.lift_shelf, world.lower_shelf

        def lifted(i: int):
            shelf = lift(i)
            self._publish("lift", shelf.id, world.map.cell_at(float(world.x[i]), float(world.y[i])))
            return shelf

        def lowered(i: int) -> None:
            shelf_id = world.shelf_ids[int(world.carried[i])]
            lower(i)
            self._publish("lower", shelf_id, world.map.cell_at(float(world.x[i]), float(world.y[i])))

        world.lift_shelf, world.lower_shelf = lifted, lowered

    def _publish(self, op: str, shelf_id: str, cell) -> None:
        self.client.publish(f"{self.TOPIC}/{self.index}", orjson.dumps([op, shelf_id, cell.x, cell.y]), qos=1)

    def _apply(self, client, userdata, message) -> None:
        from firmware_emulator.world import PAD
        from maps.model import Cell

        if message.topic == f"{self.TOPIC}/{self.index}":
            return
        op, shelf_id, x, y = orjson.loads(message.payload)
        w = self.world
        s = w._shelf_index[shelf_id]
        with self.lock:
            w._shelf_grid[w._shelf_grid == s] = -1  # wherever this world had it
            if op == "lower":
                w._shelf_grid[y + PAD, x + PAD] = s
                w.sx[s], w.sy[s] = w.map.position(Cell(x, y))
            self.applied += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def vehicles_main(config: Path, first: int, count: int, total: int, index: int) -> None:
    """Robots first+1 .. first+count of `total` (named and placed as the in-process link's
    are), as VDA 5050 vehicles on the configured broker, until terminated."""
    from drivers.vda5050.mqtt import TopicLayout
    from firmware_emulator.placement import start_cells
    from firmware_emulator.vda5050_vehicle import MqttFloor
    from fleet.clock import WallClock
    from fleet.service.config import load_settings
    from fleet.service.warehouse import stock_and_demand
    from fleet.service.wiring import emulated_world, load_warehouse_map
    from maps.model import Heading

    settings = load_settings(config, environ={})
    wmap = load_warehouse_map(settings.map.name)
    world = emulated_world(0, wmap, WallClock(), settings.robots.seed, stock_and_demand(settings, wmap))
    width = len(str(total))
    for k, cell in enumerate(start_cells(wmap, total)[first:first + count], start=first + 1):
        world.add_robot(f"robot-{k:0{width}d}", cell, Heading.EAST)
    floor = MqttFloor(world, settings.broker.url, layout=TopicLayout(interface_name=settings.broker.interface))
    mirror = ShelfMirror(world, floor.lock, settings.broker.url, index)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        floor.start(timeout=60)
        floor.run(stop=stop)
    finally:
        mirror.close()
        floor.close()
    print(json.dumps({"collisions": len(world.collisions), "laser_stops": world.laser_stops,
                      "shelf_moves_mirrored": mirror.applied}), flush=True)


if __name__ == "__main__":
    main()
