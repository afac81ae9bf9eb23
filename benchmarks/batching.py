"""Order batching strategies compared on one seeded order stream (issue: the scheduler).

Rounds of release on the medium map: every `window` seconds each pick port takes
`slots` orders from those pending; the stream and stock come from the domain generator.
Prints one JSON object: per strategy, lines per presentation and decision time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from fleet.domain import GeneratorConfig, generate
from fleet.scheduler.batching import Batching, Port, release
from fleet.scheduler.shelf_choice import sku_shelves
from maps import StationKind, shipped_map


def run(strategy: Batching, seed: int, hours: float, window: float, slots: int, time_limit: float) -> dict:
    wmap = shipped_map("medium")
    scenario = generate(wmap, seed, GeneratorConfig(orders_per_hour=1200, duration_s=hours * 3600))
    where = sku_shelves(scenario.inventory, scenario.catalogue.ids())
    ports = [Port(s.id, slots) for s in wmap.stations_of(StationKind.PICK)]
    pending: list = []
    stream = iter(scenario.orders)
    upcoming = next(stream, None)
    lines = presentations = 0
    decision_ms: list[float] = []
    now = 0.0
    while upcoming is not None or pending:
        now += window
        while upcoming is not None and upcoming.created <= now:
            pending.append(upcoming)
            upcoming = next(stream, None)
        if not pending:
            continue
        started = time.perf_counter()
        batch = release(pending, ports, where, now, strategy, time_limit=time_limit)
        decision_ms.append((time.perf_counter() - started) * 1000)
        done = {o for ids in batch.orders.values() for o in ids}
        by_id = {o.id: o for o in pending}
        lines += batch.lines(by_id)
        presentations += batch.presentations
        pending = [o for o in pending if o.id not in done]
        if upcoming is None and not done:
            break  # what is left cannot be served from stock
    return {
        "lines": lines,
        "presentations": presentations,
        "lines_per_presentation": round(lines / presentations, 3) if presentations else 0.0,
        "decision_ms_p50": round(statistics.median(decision_ms), 2),
        "decision_ms_max": round(max(decision_ms), 2),
        "rounds": len(decision_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=120.0, help="seconds between release rounds")
    parser.add_argument("--slots", type=int, default=8, help="orders per port per round")
    parser.add_argument("--time-limit", type=float, default=1.0, help="CP-SAT seconds per round")
    args = parser.parse_args()
    result = {"map": "medium", "seed": args.seed, "hours": args.hours, "window_s": args.window, "slots": args.slots}
    for strategy in Batching:
        result[strategy.value] = run(strategy, args.seed, args.hours, args.window, args.slots, args.time_limit)
    base = result[Batching.FCFS.value]["lines_per_presentation"]
    for strategy in (Batching.GREEDY, Batching.OPTIMAL):
        result[strategy.value]["vs_fcfs"] = round(result[strategy.value]["lines_per_presentation"] / base, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
