"""Real-time factor of the firmware emulator: simulated seconds per wall second.

100 and 1,000 robots on the large map (or any shipped map) run random errands (re-issued
as they finish, through the in-process RobotLink) on a simulated clock, as fast as one
core allows. Prints one JSON object. Usage:

    .venv/bin/python benchmarks/emulator.py [--map large] [--robots 100 1000] [--seconds 60] [--repeats 3] [--dt 0.05]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from drivers.inprocess import InProcessLink
from firmware_emulator.placement import populate
from firmware_emulator.wander import Wanderer
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from maps import shipped_map


def one_run(map_name: str, robots: int, seconds: float, dt: float, seed: int) -> dict:
    wmap = shipped_map(map_name)
    clock = SimulatedClock()
    world = World(wmap, clock, dt=dt, seed=seed)
    populate(world, robots)
    link = InProcessLink(world)
    wanderer = Wanderer(link, wmap, seed=seed)
    warm_up = 5.0
    pump_every = 0.5  # the load generator reacts twice a simulated second, like a fleet's control loop
    t = 0.0
    while t < warm_up:
        t += pump_every
        clock.advance_to(t)
        wanderer.pump()
    start = time.perf_counter()
    cpu_start = time.process_time()
    moving = 0
    samples = 0
    while t < warm_up + seconds:
        t += pump_every
        clock.advance_to(t)
        wanderer.pump()
        moving += int((world.v[: world.n] > 0).sum())
        samples += 1
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {
        "real_time_factor": seconds / wall,
        "cpu_time_factor": seconds / cpu,
        "wall_s": wall,
        "mean_moving_robots": moving / samples,
        "errands": wanderer.errands,
        "collisions": len(world.collisions),
        "laser_stops": world.laser_stops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="large", help="shipped map name (large, medium, demo, ...)")
    parser.add_argument("--robots", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds measured per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dt", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result: dict = {"benchmark": "emulator", "map": args.map, "dt": args.dt, "simulated_seconds": args.seconds,
                    "repeats": args.repeats, "runs": {}}
    for robots in args.robots:
        runs = [one_run(args.map, robots, args.seconds, args.dt, args.seed + k) for k in range(args.repeats)]
        result["runs"][str(robots)] = {
            "median_real_time_factor": round(statistics.median(r["real_time_factor"] for r in runs), 2),
            "real_time_factors": [round(r["real_time_factor"], 2) for r in runs],
            # simulated seconds per CPU second of this process: what one uncontended core would give
            "median_cpu_time_factor": round(statistics.median(r["cpu_time_factor"] for r in runs), 2),
            "mean_moving_robots": round(statistics.median(r["mean_moving_robots"] for r in runs), 1),
            "errands": [r["errands"] for r in runs],
            "collisions": [r["collisions"] for r in runs],
            "laser_stops": [r["laser_stops"] for r in runs],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
