"""The control-room service under load (issue 7): `fleet serve` in its own process with N
emulated robots on a map, paced to wall time, while this process (an operator's browser)
polls the API and follows the live feed. Prints one JSON object: API latency p50/p99 per
route (ms), live feed rate and size, control-cycle time (from /metrics) and fleet time
per wall time.

Caveat: the robots are emulated inside the service's process (the in-process link), so
their physics competes with the API for the same interpreter; over VDA 5050 the robots
are other processes.

    .venv/bin/python benchmarks/service_api.py --robots 1000 --map large --seconds 30
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from fleet.service.auth import token_digest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cycle_totals(client: httpx.Client) -> tuple[float, float]:
    text = client.get("/metrics").text
    total = float(re.search(r"^fleet_cycle_seconds_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^fleet_cycle_seconds_count (\S+)$", text, re.M).group(1))
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", type=int, default=1000)
    parser.add_argument("--map", default="large")
    parser.add_argument("--seconds", type=float, default=30.0, help="wall seconds of load after warm-up")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--orders-per-hour", type=float, default=6000.0,
                        help="generated orders (the scheduler sends robots only for work)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "fleet.toml"
        config.write_text(f'[map]\nname = "{args.map}"\n[robots]\nemulated = {args.robots}\n'
                          f'[database]\nurl = "sqlite:///{tmp}/fleet.db"\n[console]\nport = 0\n'
                          f'[runtime]\nspeed = {args.speed}\n[warehouse]\norders_per_hour = {args.orders_per_hour}\n'
                          f'[[users]]\nname = "bench"\nrole = "operator"\ntoken_sha256 = "{token_digest(TOKEN)}"\n')
        built = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "serve", "--config", str(config)], cwd=ROOT,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            for line in proc.stderr:
                if m := re.search(r"console at (http://\S+)/", line):
                    url = m.group(1)
                    break
            else:
                raise SystemExit(f"fleet serve exited with {proc.wait()}")
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            result = measure(url, args, built)
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(result))


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


def measure(url: str, args: argparse.Namespace, built: float) -> dict:
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
    first_robot = watched_robot(client)
    working_s = time.perf_counter() - built - startup
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

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    time.sleep(2.0)
    sim0, (cycle_sum0, cycles0) = client.get("/api/health").json()["time"], cycle_totals(client)
    routes: dict[str, list[float]] = {"/api/health": [], f"/api/robots/{first_robot}": [], "/api/robots?state=error": [],
                                      "/api/robots": [], "/api/alarms?active=true": [], "/api/stations": []}
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        for route, times in routes.items():
            t0 = time.perf_counter()
            client.get(route).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)  # an operator's browser, not a flood
    wall = time.perf_counter() - started
    stop.set()
    watcher.join(3)
    sim1, (cycle_sum1, cycles1) = client.get("/api/health").json()["time"], cycle_totals(client)
    states: dict[str, int] = {}
    for robot in client.get("/api/robots").json():
        states[robot["state"]] = states.get(robot["state"], 0) + 1
    all_times = [t for times in routes.values() for t in times]
    return {
        "map": args.map, "robots": args.robots, "speed": args.speed, "orders_per_hour": args.orders_per_hour,
        "startup_s": round(startup, 1), "first_driving_s": round(working_s, 1),
        "wall_s": round(wall, 1), "fleet_s": round(sim1 - sim0, 1), "realtime_factor": round((sim1 - sim0) / wall, 2),
        "cycles": int(cycles1 - cycles0),
        "cycle_mean_ms": round(1000 * (cycle_sum1 - cycle_sum0) / max(1, cycles1 - cycles0), 1),
        "api_ms": {route: {"n": len(t), "p50": round(statistics.median(t), 1), "p99": round(percentile(t, 0.99), 1)}
                   for route, t in routes.items()},
        "api_all_ms": {"p50": round(statistics.median(all_times), 1), "p99": round(percentile(all_times, 0.99), 1)},
        "live_feed": {"first_message_kb": round(feed["first_bytes"] / 1024, 1),
                      "messages_per_s": round(feed["messages"] / wall, 1), "kb_per_s": round(feed["bytes"] / 1024 / wall, 1),
                      "robot_rows_per_message": round(feed["robots"] / max(1, feed["messages"]), 1)},
        "robot_states": states,
    }


if __name__ == "__main__":
    main()
