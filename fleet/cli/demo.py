"""`fleet demo`: the fleet with emulated robots on the demo map, needing no external service.

By default this runs the stack headless in simulated time: traffic control drives
emulated robots (firmware_emulator) over the in-process link on random errands, and the
emulator, as an independent witness, counts collisions and laser stops. It prints progress
and a summary. With --console it starts the control-room service instead (fleet.service)
with the same robots paced to wall time, and prints the console's URL and a demo login.
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
    parser.add_argument("--duration", type=float, default=None,
                        help="simulated seconds to run (default 600; with --console: until interrupted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=0.0,
                        help="simulated seconds per wall second; 0 = as fast as the CPU allows (default)")
    parser.add_argument("--drain", action="store_true",
                        help="after --duration, hand out no new trips and run until those under way finish")
    parser.add_argument("--faults", action="store_true",
                        help="inject seeded faults: slow robots, motor stalls, a communication loss")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--console", action="store_true",
                        help="start the control-room service and its web console (paced to wall time x --speed)")
    parser.add_argument("--port", type=int, default=8080, help="--console: HTTP port (default 8080; 0 = any free)")
    parser.add_argument("--host", default="127.0.0.1", help="--console: address to listen on (default loopback)")
    parser.add_argument("--no-operators", action="store_true",
                        help="--console: no simulated operators; people work the stations from the terminal view")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.console:
        return _run_console(args)
    if args.duration is None:
        args.duration = 600.0
    from drivers.inprocess import InProcessLink
    from firmware_emulator.placement import populate
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock
    from fleet.motion import MotionControl
    from fleet.traffic.control import TrafficControl
    from fleet.workloads import ShelfMoves, shelves_on
    from maps import MapError, load_map, shipped_map

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
    if args.faults:
        _inject_faults(world, robot_ids, args.duration, args.seed)
    trips = ShelfMoves(wmap, motion, shelves_on(wmap, world.stored_shelf_at), seed=args.seed)

    print(f"fleet demo: {len(robot_ids)} emulated robots moving shelves on map {wmap.name!r} "
          f"({wmap.width} x {wmap.height}), {args.duration:.0f} simulated seconds"
          f"{' with injected faults' if args.faults else ''}; no console yet: running headless", file=sys.stderr)
    for robot_id in robot_ids:
        trips.start(robot_id)
    period, report_every, next_report, next_reset = 0.25, 60.0, 60.0, 15.0
    started = time.perf_counter()
    drain_limit = args.duration + 900.0  # a trip on the large map takes minutes, not a quarter of an hour
    while clock.now() < args.duration or (args.drain and trips.in_trip() and clock.now() < drain_limit):
        trips.closing = clock.now() >= args.duration
        clock.advance(period)
        if args.speed:
            lag = clock.now() / args.speed - (time.perf_counter() - started)
            if lag > 0:
                time.sleep(lag)
        for report in motion.tick(clock.now()):
            trips.on_report(report)
        if clock.now() >= next_reset:
            # the simulated operator walks the floor and resets stalled robots
            next_reset += 15.0
            for robot in motion.robots.values():
                if "motor_stall" in robot.errors:
                    motion.reset(robot.robot_id)
        if clock.now() >= next_report:
            next_report += report_every
            print(f"  t={clock.now():6.0f} s  trips done {trips.done:5d}  failed {len(trips.failed)}  "
                  f"collisions {len(world.collisions)}  laser stops {world.laser_stops}", file=sys.stderr)
    wall = time.perf_counter() - started
    blocked = motion.traffic.blocked()
    summary = {
        "map": wmap.name, "robots": len(robot_ids), "simulated_s": round(clock.now(), 1), "wall_s": round(wall, 2),
        "realtime_factor": round(clock.now() / wall, 1), "trips_done": trips.done,
        "trips_failed": [f"{r.robot_id} {r.errand_id}: {r.reason}" for r in trips.failed],
        "trips_in_progress": trips.in_trip(), "blocked": blocked,
        "collisions": len(world.collisions), "laser_stops": world.laser_stops,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0 if not world.collisions else 1


def _run_console(args: argparse.Namespace) -> int:
    """The service with its console on a throwaway SQLite database and demo logins."""
    import tempfile
    import threading

    from fleet.service.app import DEMO_USERS, Service, demo_users
    from fleet.service.config import ConfigError, Settings
    from maps import MapError

    if args.robots < 1 or (args.duration is not None and args.duration <= 0) or args.speed < 0 \
            or not 0 <= args.port <= 65535:
        print("--robots and --duration must be positive, --speed not negative, --port 0..65535", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp:
        try:
            settings = Settings.model_validate({
                "map": {"name": args.map_path or "demo"},
                "robots": {"emulated": args.robots, "seed": args.seed},
                "database": {"url": f"sqlite:///{tmp}/fleet.db"},
                "console": {"host": args.host, "port": args.port},
                "runtime": {"speed": args.speed or 1.0},
                # the demand of `fleet sim`'s defaults, for the scheduler to serve
                "warehouse": {"orders_per_hour": 600, "inbound_notes_per_hour": 4,
                              "simulated_operators": not args.no_operators},
            })
            settings.users = demo_users()
            service = Service(settings)
        except (ConfigError, MapError, FileNotFoundError, ValueError) as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.faults:
            print("--faults is not available with --console yet", file=sys.stderr)
        service.start()
        logins = ", ".join(f"{n} / {n}" for n in DEMO_USERS)
        print(f"fleet demo: console at {service.url}  (log in as {logins})", flush=True)
        try:
            threading.Event().wait(args.duration / settings.runtime.speed if args.duration else None)
        finally:
            service.stop()
    return 0


def _inject_faults(world, robot_ids: list[str], duration: float, seed: int) -> None:
    """Seeded faults a shift sees: robots running slow, motors stalling, a radio dropping."""
    import random

    from firmware_emulator.faults import CommunicationLoss, MotorStall, SlowDown

    rng = random.Random(seed)
    late = max(1, len(robot_ids) // 10)
    for robot_id in rng.sample(robot_ids, late):
        world.inject(SlowDown(robot_id, factor=0.5, duration=duration / 3), at=rng.uniform(0, duration / 2))
    for robot_id in rng.sample(robot_ids, max(1, len(robot_ids) // 20)):
        world.inject(MotorStall(robot_id, duration=30.0), at=rng.uniform(0, duration * 0.8))
    world.inject(CommunicationLoss(rng.choice(robot_ids), duration=60.0), at=rng.uniform(0, duration * 0.7))
