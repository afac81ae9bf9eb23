"""`fleet demo`: the fleet with emulated robots on the demo map, needing no external service.

Until the control-room service and its console exist, this runs the stack headless in
simulated time: traffic control drives emulated robots (firmware_emulator) over the
in-process link on random errands, and the emulator, as an independent witness, counts
collisions and laser stops. It prints progress and a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the fleet with emulated robots on the demo map (no external service)")
    parser.add_argument("--map", dest="map_path", help="map file (default: the shipped demo map)")
    parser.add_argument("--robots", type=int, default=12, help="number of emulated robots (default 12)")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds to run (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=0.0,
                        help="simulated seconds per wall second; 0 = as fast as the CPU allows (default)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    import random

    from drivers.inprocess import InProcessLink
    from firmware_emulator.placement import populate
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock
    from fleet.motion import Errand, MotionControl, Outcome
    from fleet.traffic.control import TrafficControl
    from maps import CellKind, MapError, load_map, shipped_map

    try:
        wmap = load_map(args.map_path) if args.map_path else shipped_map("demo")
    except MapError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.robots < 1 or args.duration <= 0 or args.speed < 0:
        print("--robots and --duration must be positive and --speed not negative", file=sys.stderr)
        return 2
    clock = SimulatedClock()
    world = World(wmap, clock, seed=args.seed)
    motion = MotionControl(InProcessLink(world), TrafficControl(wmap, rotation=True, seed=args.seed))
    try:
        robot_ids = populate(world, args.robots)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for robot_id in robot_ids:
        unit = world.robot(robot_id)
        motion.add_robot(robot_id, unit.cell, unit.heading)
    rng = random.Random(args.seed)
    aisles = wmap.cells_of(CellKind.AISLE)
    serial = 0

    def next_errand(robot_id: str) -> None:
        nonlocal serial
        serial += 1
        busy = {r.errand.goal for r in motion.robots.values() if r.errand}
        goal = rng.choice([c for c in aisles if c not in busy])
        motion.assign(robot_id, Errand(f"e{serial}", goal))

    print(f"fleet demo: {len(robot_ids)} emulated robots on map {wmap.name!r} ({wmap.width} x {wmap.height}), "
          f"{args.duration:.0f} simulated seconds; no console yet: running headless", file=sys.stderr)
    for robot_id in robot_ids:
        next_errand(robot_id)
    done = failed = 0
    period, report_every, next_report = 0.25, 60.0, 60.0
    started = time.perf_counter()
    while clock.now() < args.duration:
        clock.advance(period)
        if args.speed:
            lag = clock.now() / args.speed - (time.perf_counter() - started)
            if lag > 0:
                time.sleep(lag)
        for report in motion.tick(clock.now()):
            done += report.outcome is Outcome.DONE
            failed += report.outcome is Outcome.FAILED
            next_errand(report.robot_id)
        if clock.now() >= next_report:
            next_report += report_every
            print(f"  t={clock.now():6.0f} s  errands done {done:5d}  failed {failed}  "
                  f"collisions {len(world.collisions)}  laser stops {world.laser_stops}", file=sys.stderr)
    wall = time.perf_counter() - started
    summary = {
        "map": wmap.name, "robots": len(robot_ids), "simulated_s": round(clock.now(), 1), "wall_s": round(wall, 2),
        "errands_done": done, "errands_failed": failed, "collisions": len(world.collisions),
        "laser_stops": world.laser_stops,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0 if not world.collisions else 1
