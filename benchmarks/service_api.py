"""The control-room service under load (issue 7): N emulated robots on a map driven by the
runtime at wall-time speed, while a client hammers the API and a browser-like client
follows the live feed. Prints one JSON object: API latency p50/p99 per route (ms), live
feed message rate and size, control-cycle time and how far the loop fell behind.

Caveat: the robots are emulated in the service's own process (the in-process link), so
the emulator's physics competes with the API for the same interpreter; with VDA 5050 the
robots are other processes.

    .venv/bin/python benchmarks/service_api.py --robots 1000 --map large --seconds 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time

import httpx
import orjson

from fleet.service.app import Service
from fleet.service.auth import token_digest
from fleet.service.config import Settings, User


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", type=int, default=1000)
    parser.add_argument("--map", default="large")
    parser.add_argument("--seconds", type=float, default=30.0, help="wall seconds of load after warm-up")
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()
    token = "bench-token-0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate({
            "map": {"name": args.map}, "robots": {"emulated": args.robots},
            "database": {"url": f"sqlite:///{tmp}/fleet.db"}, "console": {"port": 0},
            "runtime": {"speed": args.speed}})
        settings.users = [User(name="bench", role="operator", token_sha256=token_digest(token))]
        built = time.perf_counter()
        service = Service(settings)
        service.start()
        startup = time.perf_counter() - built
        headers = {"Authorization": f"Bearer {token}"}
        first_robot = next(iter(service.runtime.snapshot().robots))
        feed = {"messages": 0, "bytes": 0, "robots": 0}
        stop = threading.Event()

        def follow() -> None:
            from websockets.sync.client import connect
            with connect(f"ws://127.0.0.1:{service.port}/api/live", max_size=None) as ws:
                ws.send(orjson.dumps({"token": token}).decode())
                ws.send(orjson.dumps({"watch": first_robot}).decode())
                first = True
                while not stop.is_set():
                    try:
                        raw = ws.recv(timeout=1)
                    except TimeoutError:
                        continue
                    if first:  # the full state, sent once
                        feed["first_bytes"], first = len(raw), False
                        continue
                    feed["messages"] += 1
                    feed["bytes"] += len(raw)
                    feed["robots"] += len(orjson.loads(raw).get("robots", {}))

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        time.sleep(3.0)  # warm-up: first cycles, JIT
        cycle0, sim0 = service.runtime.snapshot().cycle, service.runtime.snapshot().time
        routes = {"/api/health": [], f"/api/robots/{first_robot}": [], "/api/robots?state=error": [], "/api/robots": [],
                  "/api/alarms?active=true": [], "/api/stations": []}
        started = time.perf_counter()
        with httpx.Client(base_url=f"http://127.0.0.1:{service.port}", headers=headers, timeout=10) as client:
            while time.perf_counter() - started < args.seconds:
                for route, times in routes.items():
                    t0 = time.perf_counter()
                    r = client.get(route)
                    times.append((time.perf_counter() - t0) * 1000)
                    r.raise_for_status()
                time.sleep(0.05)  # an operator's browser, not a flood
        wall = time.perf_counter() - started
        stop.set()
        watcher.join(3)
        snap = service.runtime.snapshot()
        cycles = service.runtime.metrics.planning
        cycle_sum = cycles._sum.get()
        cycle_count = sum(b.get() for b in cycles._buckets)
        states: dict[str, int] = {}
        for row in snap.robots.values():
            states[row[3]] = states.get(row[3], 0) + 1
        service.stop()
    all_times = [t for times in routes.values() for t in times]
    print(json.dumps({
        "map": args.map, "robots": args.robots, "speed": args.speed, "startup_s": round(startup, 1),
        "wall_s": round(wall, 1), "fleet_s": round(snap.time - sim0, 1),
        "realtime_factor": round((snap.time - sim0) / wall, 2),
        "cycles": snap.cycle - cycle0, "cycle_mean_ms": round(1000 * cycle_sum / max(1, cycle_count), 1),
        "api_ms": {route: {"n": len(t), "p50": round(statistics.median(t), 1), "p99": round(percentile(t, 0.99), 1)}
                   for route, t in routes.items()},
        "api_all_ms": {"p50": round(statistics.median(all_times), 1), "p99": round(percentile(all_times, 0.99), 1)},
        "live_feed": {"first_message_kb": round(feed.get("first_bytes", 0) / 1024, 1),
                      "messages_per_s": round(feed["messages"] / wall, 1),
                      "kb_per_s": round(feed["bytes"] / 1024 / wall, 1),
                      "robot_rows_per_message": round(feed["robots"] / max(1, feed["messages"]), 1)},
        "robot_states": states,
    }))


if __name__ == "__main__":
    main()
