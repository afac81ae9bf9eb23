"""`fleet emulate`: run emulated robots (the firmware emulator) on a map.

The world is built once (`build_world`) and then driven by a front end. Without a wire
the front end is the Python interface itself: the command runs the world, optionally keeps
the robots busy with random errands (`--wander`), and prints a status summary. With
`--serial pty` or `--serial tcp://HOST:PORT` each robot's firmware is on its own serial
line (firmware_emulator/serial_front.py) and a master drives it; the world then runs
paced to wall time, since the master lives in wall time. With `--mqtt URL` each robot is a
VDA 5050 2.1.0 vehicle on that broker (firmware_emulator/vda5050_vehicle.py), also paced.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("emulate", help="run emulated robots on a map (the firmware emulator)")
    parser.add_argument("--map", required=True, dest="map_path", help="map file (TOML)")
    parser.add_argument("--robots", type=int, required=True, help="how many robots (placed on parking, then aisle cells)")
    parser.add_argument("--seed", type=int, default=0, help="seed for sensor noise, random faults and errands")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="times real time (default 1); 0 runs as fast as the CPU allows")
    parser.add_argument("--duration", type=float, default=None,
                        help="simulated seconds to run (default: until Ctrl-C; required with --speed 0)")
    parser.add_argument("--dt", type=float, default=0.05, help="physics step in seconds (default 0.05)")
    parser.add_argument("--profile", help="robot profile TOML (default: the built-in profile)")
    parser.add_argument("--wander", action="store_true", help="keep the robots busy with random errands")
    parser.add_argument("--faults", type=float, default=0.0, metavar="PER_ROBOT_HOUR",
                        help="inject seeded random faults at this rate per robot and hour (default 0)")
    parser.add_argument("--report-every", type=float, default=10.0, help="simulated seconds between summaries")
    parser.add_argument("--json", action="store_true", help="print summaries as JSON lines")
    serial = parser.add_argument_group("serial front end")
    serial.add_argument("--serial", metavar="pty|tcp://HOST:PORT",
                        help="put each robot on a pseudo-terminal, or on TCP ports PORT, PORT+1, ...; "
                             'prints one JSON line {"robot": ID, "port": URL} per robot')
    serial.add_argument("--bit-errors", type=float, default=0.0, metavar="RATE", help="line: bit error rate (per bit)")
    serial.add_argument("--drop-bytes", type=float, default=0.0, metavar="RATE", help="line: dropped bytes (per byte)")
    serial.add_argument("--delays", type=float, default=0.0, metavar="RATE",
                        help="line: chance per byte that the line stalls for --delay seconds")
    serial.add_argument("--delay", type=float, default=0.05, metavar="SECONDS", help="line: length of a stall (default 0.05)")
    serial.add_argument("--start-under-shelves", action="store_true",
                        help="place the robots on storage cells, under shelves (for `fleet hil check --allow-motion`)")
    serial.add_argument("--quirk", action="append", default=[], choices=["no-watchdog", "wrong-crc"],
                        help="TEST ONLY: make the robots break the protocol on purpose, to see the bench fail")
    vda = parser.add_argument_group("VDA 5050 front end")
    vda.add_argument("--mqtt", metavar="URL",
                     help="make each robot a VDA 5050 2.1.0 vehicle on this broker (mqtt://[user[:pw]@]host[:port], "
                          "mqtts:// for TLS); serialNumber = robot id")
    vda.add_argument("--interface", default="uagv", help="VDA 5050 interface name, the first topic level (default uagv)")
    vda.add_argument("--topic-prefix", default="", help="levels before the interface name (some cloud brokers need one)")
    vda.add_argument("--manufacturer", default="agv-emulator", help="VDA 5050 manufacturer (default agv-emulator)")
    vda.add_argument("--visualization", type=float, default=None, metavar="SECONDS",
                     help="publish visualization every SECONDS (default: none)")
    parser.set_defaults(run=_run)


def build_world(args: argparse.Namespace):
    """The world and its clock, as the options ask. Raises ValueError with a message for bad options."""
    from firmware_emulator.placement import populate
    from firmware_emulator.profile import DEFAULT_PROFILE, RobotProfile
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock, WallClock
    from maps import load_map

    if args.speed < 0:
        raise ValueError(f"--speed must be >= 0, got {args.speed}")
    if args.speed == 0 and args.duration is None:
        raise ValueError("--speed 0 runs as fast as possible: give --duration")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    if args.report_every <= 0:
        raise ValueError("--report-every must be positive")
    if args.faults < 0:
        raise ValueError(f"--faults must be >= 0, got {args.faults}")
    wmap = load_map(args.map_path)
    profile = RobotProfile.load(args.profile) if args.profile else DEFAULT_PROFILE
    serial = getattr(args, "serial", None)
    if serial is not None and (args.speed != 1.0 or args.wander):
        raise ValueError("with --serial a master drives the robots in wall time: drop --speed and --wander")
    if getattr(args, "mqtt", None) is not None and (args.speed != 1.0 or args.wander or serial is not None):
        raise ValueError("with --mqtt a master drives the robots in wall time: drop --speed, --wander and --serial")
    clock = SimulatedClock() if args.speed == 0 else WallClock(args.speed)
    world = World(wmap, clock, dt=args.dt, seed=args.seed)
    if getattr(args, "start_under_shelves", False):
        from maps.model import CellKind

        storage = wmap.cells_of(CellKind.STORAGE)
        if args.robots > len(storage):
            raise ValueError(f"{args.robots} robots but only {len(storage)} storage cells")
        width = len(str(args.robots))
        robot_ids = [f"robot-{k:0{width}d}" for k in range(1, args.robots + 1)]
        for robot_id, cell in zip(robot_ids, storage):
            world.add_robot(robot_id, cell, profile=profile)
    else:
        robot_ids = populate(world, args.robots, profile)
    if args.faults:
        from firmware_emulator.faults import random_faults

        horizon = args.duration if args.duration is not None else 24 * 3600.0
        world.inject_all(random_faults(robot_ids, horizon, args.faults, args.seed))
    return world, clock


def summary(world) -> dict:
    n = world.n
    states: dict[str, int] = {}
    for unit in world.units:
        state = unit.activity or ("error" if unit.holds - {"paused"} else "idle")
        states[state] = states.get(state, 0) + 1
    return {
        "time": round(world.now(), 2),
        "robots": n,
        "states": dict(sorted(states.items())),
        "offline": sum(not unit.online for unit in world.units),
        "loaded": int((world.carried[:n] >= 0).sum()),
        "mean_charge": round(float(world.soc[:n].mean()), 4) if n else None,
        "collisions": len(world.collisions),
        "laser_stops": world.laser_stops,
    }


def _show(world, as_json: bool) -> None:
    report = summary(world)
    if as_json:
        print(json.dumps(report), flush=True)
    else:
        states = ", ".join(f"{k} {v}" for k, v in report["states"].items())
        print(f"t={report['time']:.1f}s robots={report['robots']} ({states}) offline={report['offline']} "
              f"loaded={report['loaded']} "
              f"charge={report['mean_charge']} collisions={report['collisions']} laser_stops={report['laser_stops']}",
              flush=True)


def _run_serial(args: argparse.Namespace, world) -> int:
    """Each robot on its own line; the world paced to wall time until --duration or Ctrl-C."""
    from firmware_emulator.serial_front import LineNoise, Quirks, SerialFloor, SerialLines

    quirks = Quirks(no_watchdog="no-watchdog" in args.quirk, wrong_crc="wrong-crc" in args.quirk)
    try:
        noise = LineNoise(args.bit_errors, args.drop_bytes, args.delays, args.delay, args.seed)
        noise.faults(0)  # the rates' own checks, before any line is opened
        lines = SerialLines(args.serial, list(world.robots), noise, quirks)
    except (ValueError, OSError) as exc:
        print(f"fleet emulate: {exc}", file=sys.stderr)
        return 2
    floor = SerialFloor(world, lines.robot_ports, quirks)
    try:
        for robot_id, url in lines.master_urls.items():
            print(json.dumps({"robot": robot_id, "port": url}), flush=True)
        floor.start()
        end = args.duration if args.duration is not None else float("inf")
        while world.now() < end:
            floor.run(until=min(end, world.now() + args.report_every))
            _show(world, args.json)
    except KeyboardInterrupt:
        pass
    finally:
        floor.close()
        lines.close()
    return 0


def _run_mqtt(args: argparse.Namespace, world) -> int:
    """Each robot a VDA 5050 vehicle; the world paced to wall time until --duration or Ctrl-C."""
    from drivers.vda5050.mqtt import TopicLayout, VehicleId
    from firmware_emulator.vda5050_vehicle import MqttFloor

    try:
        for robot_id in world.robots:
            VehicleId(args.manufacturer, robot_id)  # both must be valid topic levels
        floor = MqttFloor(world, args.mqtt, manufacturer=args.manufacturer,
                          layout=TopicLayout(interface_name=args.interface, prefix=args.topic_prefix),
                          visualization_interval=args.visualization)
    except ValueError as exc:
        print(f"fleet emulate: {exc}", file=sys.stderr)
        return 2
    try:
        if not floor.start(timeout=10.0):
            print(f"fleet emulate: not every vehicle connected to {args.mqtt} within 10 s; still trying",
                  file=sys.stderr)
        end = args.duration if args.duration is not None else float("inf")
        while world.now() < end:
            floor.run(until=min(end, world.now() + args.report_every))
            _show(world, args.json)
    except KeyboardInterrupt:
        pass
    finally:
        floor.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    from maps import MapError
    from firmware_emulator.profile import ProfileError

    try:
        world, clock = build_world(args)
    except MapError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (ValueError, ProfileError, OSError) as exc:
        print(f"fleet emulate: {exc}", file=sys.stderr)
        return 2
    if args.serial is not None:
        return _run_serial(args, world)
    if args.mqtt is not None:
        return _run_mqtt(args, world)

    wanderer = None
    if args.wander:
        from drivers.inprocess import InProcessLink
        from firmware_emulator.wander import Wanderer

        wanderer = Wanderer(InProcessLink(world), world.map, seed=args.seed)

    def show() -> None:
        _show(world, args.json)

    end = args.duration if args.duration is not None else float("inf")
    pump = 0.5  # seconds between errand updates, like a fleet's control loop
    t = 0.0
    next_report = args.report_every
    shown_at = None
    try:
        while t < end:
            t = min(t + pump, end)
            if args.speed == 0:
                clock.advance_to(t)
            else:
                world.run_paced(t)
            if wanderer is not None:
                wanderer.pump()
            if t >= next_report - 1e-9:
                show()
                shown_at = t
                next_report += args.report_every
    except KeyboardInterrupt:
        pass
    if shown_at != t:
        show()
    return 0
