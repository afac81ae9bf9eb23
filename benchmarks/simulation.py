"""Whole-warehouse simulation: wall time, station utilisation against robot count, and
batching against the first-come-first-served baseline on the same seeded order stream.

Each run is `fleet sim` in-process (fleet/simulation.py). Prints one JSON object. Usage:

    .venv/bin/python benchmarks/simulation.py [--map maps/medium.toml] [--robots 30 60 90]
        [--hours 1] [--batching greedy fcfs] [--seed 0] [--period 0.5] [--dt 0.1] [--slotting]

`--period` (control cycle) and `--dt` (emulator physics step) trade fidelity for speed;
the figures are only comparable at the same values.
"""

from __future__ import annotations

import argparse
import json
import sys

from fleet.scheduler.batching import Batching
from fleet.simulation import SimConfig, Simulation
from maps import load_map

KEEP = ("orders_received", "orders_completed", "order_lines_picked", "units_picked", "units_stowed",
        "pick_utilisation_min", "pick_utilisation_mean", "robot_utilisation", "presentations",
        "lines_per_presentation", "order_cycle_time_mean_s", "order_cycle_time_p95_s", "charging_share",
        "collisions", "laser_stops", "stuck_tasks", "failed_errands", "wall_seconds", "simulated_seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="maps/medium.toml")
    parser.add_argument("--robots", type=int, nargs="+", default=[30, 60, 90])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--batching", nargs="+", default=["greedy", "fcfs"], choices=[b.value for b in Batching])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders-per-hour", type=float, default=600.0)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--slotting", action="store_true", help="shelves go back near the port they left")
    args = parser.parse_args()
    wmap = load_map(args.map)
    runs = []
    for robots in args.robots:
        for batching in args.batching:
            config = SimConfig(robots=robots, hours=args.hours, seed=args.seed, orders_per_hour=args.orders_per_hour,
                               batching=Batching(batching), control_period_s=args.period, physics_dt_s=args.dt,
                               slotting=args.slotting)
            kpis = Simulation(wmap, config).run()
            runs.append({"robots": robots, "batching": batching, **{k: kpis[k] for k in KEEP}})
            print(f"{robots} robots, {batching}: {kpis['wall_seconds']} s wall", file=sys.stderr)
    ratio = {}
    for robots in args.robots:
        by = {r["batching"]: r for r in runs if r["robots"] == robots}
        if "fcfs" in by and by["fcfs"]["lines_per_presentation"]:
            ratio[robots] = {b: round(r["lines_per_presentation"] / by["fcfs"]["lines_per_presentation"], 3)
                             for b, r in by.items() if b != "fcfs"}
    print(json.dumps({
        "map": wmap.name, "hours": args.hours, "seed": args.seed, "slotting": args.slotting, "period_s": args.period, "dt_s": args.dt,
        "real_time_factor": {f"{r['robots']}/{r['batching']}": round(r["simulated_seconds"] / r["wall_seconds"], 2)
                             for r in runs},
        "lines_per_presentation_vs_fcfs": ratio,
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
