"""`fleet demo`: the control-room service with emulated robots, needing nothing outside.

It runs what `fleet serve` runs: the scheduler, traffic control, the HTTP API and the
console, driving robots over VDA 5050 on an MQTT broker. The broker is a private one on
loopback (fleet/service/broker.py: Mosquitto if installed, else amqtt in this process),
or an external one (--broker). The robots are the firmware emulator's, each a VDA 5050
vehicle with its own MQTT client on that broker (firmware_emulator/vda5050_vehicle.py),
placed on the map's start cells; the shelves stand where the service's generated stock
puts them. Simulated operators work the stations unless --no-operators, in which case a
person works them from the console's terminal view. It opens nothing: it prints the
console's URL and the demo logins, and runs until Ctrl-C, or for --duration simulated
seconds, after which it prints a JSON summary with `fleet sim`'s KPI fields.

The vehicles run in this process, on threads, not in a child process: their world is the
independent witness of collisions whose count the summary reports, it is built from the
same generated scenario as the service (so the shelves agree without a second source of
truth), and one process means one Ctrl-C that takes everything down in order. They still
reach the service only through the broker, as real vehicles would.

--speed X runs one WallClock X times faster than wall time, shared by the vehicles' world
and the service (fleet/service/wiring.py build_runtime), so robots, operators, order
arrivals and the protocol's state timeouts all keep the same pace.

`fleet demo --headless` is the older traffic-control soak that
tests/test_shelf_moves_soak.py and benchmarks/traffic_soak.py run: no service, no
scheduler; robots move random shelves over the in-process link in simulated time, as fast
as the CPU allows, with optional injected faults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maps.model import WarehouseMap

#: The demo's vehicles' manufacturer (the third VDA 5050 topic level): the service drives
#: only these on a broker that may carry other vehicles too.
MANUFACTURER = "fleet-demo"
#: At 50x a control cycle (0.25 simulated s) has 5 ms of wall time, about what one takes
#: for a dozen robots on a busy small machine; faster, the fleet would lag its robots.
MAX_SPEED = 50.0
#: Seconds between a vehicle's state messages when nothing happens (VDA 5050 allows up to
#: 30): well inside the service's state timeout (35 s) even when a busy machine is late.
STATE_INTERVAL = 5.0

SERVICE_ONLY = ("broker", "embedded_broker", "port", "host", "no_operators")
HEADLESS_ONLY = ("drain", "faults", "json")


def register(sub: argparse._SubParsersAction) -> None:
    from fleet.service.broker import EMBEDDED

    parser = sub.add_parser("demo", help="run the service with emulated robots on the demo map (no external service)",
                            description="The control-room service with emulated VDA 5050 robots on a private MQTT "
                                        "broker; prints the console URL and a demo login.")
    parser.add_argument("--map", dest="map_path", help="map file or shipped map name (default: the demo map)")
    parser.add_argument("--robots", type=int, default=12, help="number of emulated robots (default 12)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many simulated seconds and print a JSON summary with fleet sim's KPI "
                             "fields (default: until Ctrl-C; --headless: 600)")
    parser.add_argument("--speed", type=float, default=None,
                        help=f"simulated seconds per wall second (default 1, at most {MAX_SPEED:g}; --headless: "
                             "0 = as fast as the CPU allows, the default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stock, the orders and the operators")
    parser.add_argument("--broker", metavar="URL",
                        help="use this MQTT broker (mqtt://[user[:pw]@]host[:port], mqtts:// for TLS) instead of "
                             "a private one")
    parser.add_argument("--embedded-broker", choices=EMBEDDED, default=None,
                        help="which private broker: auto (the default) is Mosquitto if installed, else amqtt")
    parser.add_argument("--port", type=int, default=None, help="console HTTP port (default 8080; 0 = any free)")
    parser.add_argument("--host", default=None, help="console address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-operators", action="store_true", default=None,
                        help="no simulated operators: people work the stations from the console's terminal view")
    headless = parser.add_argument_group("headless shelf moves (the traffic soak)")
    headless.add_argument("--headless", action="store_true",
                          help="no service: robots move random shelves in simulated time; prints a summary")
    headless.add_argument("--drain", action="store_true", default=None,
                          help="after --duration, hand out no new trips and run until those under way finish")
    headless.add_argument("--faults", action="store_true", default=None,
                          help="inject seeded faults: slow robots, motor stalls, a communication loss")
    headless.add_argument("--json", action="store_true", default=None, help="print the summary as one JSON object")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    wrong = [name for name in (HEADLESS_ONLY if not args.headless else SERVICE_ONLY) if getattr(args, name) is not None]
    if wrong:
        option = "--" + wrong[0].replace("_", "-")
        return _usage(f"{option} needs --headless" if not args.headless else f"{option} does not go with --headless")
    if args.robots < 1:
        return _usage(f"--robots must be at least 1, got {args.robots}")
    if args.duration is not None and not args.duration > 0:
        return _usage(f"--duration must be positive, got {args.duration:g}")
    return _run_headless(args) if args.headless else _run_service(args)


def _usage(message: str) -> int:
    print(f"fleet demo: {message}", file=sys.stderr)
    return 2


def _load_map(name: str | None) -> WarehouseMap | None:
    """The map, or None after saying why it cannot be read."""
    from fleet.service.wiring import load_warehouse_map
    from maps import MapError

    try:
        return load_warehouse_map(name or "demo")
    except (MapError, FileNotFoundError) as exc:
        _usage(f"--map: {exc}")
        return None


# --- the service ------------------------------------------------------------------------------
def _run_service(args: argparse.Namespace) -> int:
    import contextlib
    import signal
    import socket
    import tempfile
    import threading

    from drivers.vda5050.mqtt import BrokerConfig
    from firmware_emulator.vda5050_vehicle import MqttFloor
    from fleet.clock import WallClock
    from fleet.scheduler.kpis import KpiSampler, run_kpis
    from fleet.service.app import DEMO_USERS, Service, demo_users
    from fleet.service.broker import BrokerError, embedded_broker
    from fleet.service.config import Settings
    from fleet.service.warehouse import stock_and_demand
    from fleet.service.wiring import emulated_world

    speed = 1.0 if args.speed is None else args.speed
    port = 8080 if args.port is None else args.port
    if not 0 < speed <= MAX_SPEED:
        return _usage(f"--speed must be above 0 and at most {MAX_SPEED:g}, got {speed:g}")
    if not 0 <= port <= 65535:
        return _usage(f"--port must be 0..65535, got {port}")
    if args.broker is not None:
        try:
            external = BrokerConfig.from_url(args.broker)
            socket.create_connection((external.host, external.port), timeout=5).close()
        except ValueError as exc:
            return _usage(f"--broker: {exc}")
        except OSError as exc:
            return _usage(f"--broker: cannot reach {external.host}:{external.port}: {exc.strerror or exc}")
    wmap = _load_map(args.map_path)
    if wmap is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp, contextlib.ExitStack() as running:
        # Ctrl-C or SIGTERM, even while starting up, ends the run and everything is taken
        # down in order (a plain SIGTERM would leave a Mosquitto child behind)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.callback(signal.signal, sig, signal.signal(sig, lambda *_: stop.set()))
        if args.broker is None:
            broker = embedded_broker(Path(tmp), args.embedded_broker or "auto")
            try:
                broker.start()
            except BrokerError as exc:
                print(f"fleet demo: {exc}", file=sys.stderr)
                return 1
            running.callback(broker.stop)
        url = args.broker or broker.url
        config = _config(args, Path(tmp), port)
        scenario = stock_and_demand(Settings.model_validate(config), wmap)
        clock = WallClock(speed, running=False)  # fleet time begins once everything is up
        try:
            world = emulated_world(args.robots, wmap, clock, args.seed, scenario)
        except ValueError as exc:  # more robots than start cells
            return _usage(f"--robots: {exc}")
        # the service drives these vehicles only: an external broker may carry others
        settings = Settings.model_validate({**config, "broker": {
            "enabled": True, "url": url, "vehicles": list(world.robots), "manufacturer": MANUFACTURER}})
        settings.users = demo_users()
        # Taken down in the reverse order: the robots stop moving, the service stops (while
        # the vehicles are still online: no alarms for robots lost), the vehicles go offline.
        floor = MqttFloor(world, url, manufacturer=MANUFACTURER, state_interval=STATE_INTERVAL)
        running.callback(floor.close)
        # the service before the vehicles connect, so that its link hears each vehicle's
        # first state and adopts it at once, not after a periodic state
        service = Service(settings, wmap, wall_clock=clock)
        running.callback(service.stop)  # which closes it, started or not
        warehouse = service.runtime.work
        sampler = KpiSampler(warehouse.scheduler)
        warehouse.after_cycle.append(lambda: sampler.observe(clock.now()))
        if not floor.start(timeout=10.0):
            print(f"fleet demo: the robots could not connect to the broker at {url} within 10 s", file=sys.stderr)
            return 1
        stepping = threading.Event()
        stepper = threading.Thread(target=floor.run, kwargs={"stop": stepping}, name="demo-robots", daemon=True)
        stepper.start()
        running.callback(stepper.join, 5)
        running.callback(stepping.set)
        clock.start()
        started = time.perf_counter()
        try:
            service.start()
        except RuntimeError as exc:  # the console's port is taken, say
            print(f"fleet demo: {exc} (is port {port} taken? --port 0 picks a free one)", file=sys.stderr)
            return 1
        logins = ", ".join(f"{n} / {n}" for n in DEMO_USERS)
        print(f"fleet demo: console at {service.url}  (log in as {logins})", flush=True)
        where = f"the broker at {url}" if args.broker else f"a private {type(broker).__name__} at {url}"
        print(f"fleet demo: {len(world.robots)} emulated VDA 5050 robots on {where}, map {wmap.name!r}, "
              f"{speed:g}x wall time, {'no' if args.no_operators else 'simulated'} operators; "
              f"{'Ctrl-C stops' if args.duration is None else f'stopping at {args.duration:g} simulated s'}",
              file=sys.stderr, flush=True)
        failure = _wait(stop, clock, args.duration, service, stepper)
        if failure:
            print(f"fleet demo: {failure}", file=sys.stderr)
            return 1
        if args.duration is None:
            print("fleet demo: stopping", file=sys.stderr)
            return 0

        def summary() -> dict:
            with floor.lock:
                collisions, laser_stops = len(world.collisions), int(world.laser_stops)
            return run_kpis(sampler, robots=len(world.robots), seed=args.seed, now=clock.now(),
                            stuck_after_s=warehouse.stuck_after_s, collisions=collisions, laser_stops=laser_stops,
                            wall_s=time.perf_counter() - started)

        kpis = service.runtime.call(summary)  # between two cycles: the scheduler holds still
        print(json.dumps(kpis), flush=True)
        return 0 if not kpis["collisions"] else 1


def _config(args: argparse.Namespace, tmp: Path, port: int) -> dict:
    """The service's settings but its broker: a throwaway SQLite database and `fleet sim`'s
    default demand, generated for the whole run."""
    return {
        "map": {"name": args.map_path or "demo"},
        "robots": {"seed": args.seed},
        "database": {"url": f"sqlite:///{tmp}/fleet.db"},
        "console": {"host": args.host or "127.0.0.1", "port": port},
        "warehouse": {"orders_per_hour": 600, "inbound_notes_per_hour": 4,
                      "generated_hours": min(168.0, (args.duration or 24 * 3600.0) / 3600.0),
                      "simulated_operators": not args.no_operators},
    }


def _wait(stop, clock, duration: float | None, service, stepper) -> str | None:
    """Until Ctrl-C (or SIGTERM), or until the clock reads `duration`; what went wrong, if
    the service's control loop or the robots' thread died meanwhile."""
    while True:
        left = None if duration is None else (duration - clock.now()) / clock.speed
        if left is not None and left <= 0:
            return None
        if stop.wait(1.0 if left is None else min(1.0, left)):
            return None
        if not service.runtime.running:
            return f"the control loop stopped: {service.runtime.error!r}"
        if not stepper.is_alive():
            return "the emulated robots' thread stopped"


# --- headless shelf moves (the traffic soak) ------------------------------------------------------
def _run_headless(args: argparse.Namespace) -> int:
    from drivers.inprocess import InProcessLink
    from firmware_emulator.placement import populate
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock
    from fleet.motion import MotionControl
    from fleet.traffic.control import TrafficControl
    from fleet.workloads import ShelfMoves, shelves_on

    duration = 600.0 if args.duration is None else args.duration
    speed = 0.0 if args.speed is None else args.speed
    if speed < 0:
        return _usage(f"--speed must not be negative, got {speed:g}")
    wmap = _load_map(args.map_path)
    if wmap is None:
        return 2
    clock = SimulatedClock()
    world = World(wmap, clock, seed=args.seed)
    motion = MotionControl(InProcessLink(world), TrafficControl(wmap, rotation=True, seed=args.seed))
    try:
        robot_ids = populate(world, args.robots)
    except ValueError as exc:
        return _usage(f"--robots: {exc}")
    for robot_id in robot_ids:
        unit = world.robot(robot_id)
        motion.add_robot(robot_id, unit.cell, unit.heading)
    if args.faults:
        _inject_faults(world, robot_ids, duration, args.seed)
    trips = ShelfMoves(wmap, motion, shelves_on(wmap, world.stored_shelf_at), seed=args.seed)

    print(f"fleet demo: {len(robot_ids)} emulated robots moving shelves on map {wmap.name!r} "
          f"({wmap.width} x {wmap.height}), {duration:.0f} simulated seconds"
          f"{' with injected faults' if args.faults else ''}, headless", file=sys.stderr)
    for robot_id in robot_ids:
        trips.start(robot_id)
    period, report_every, next_report, next_reset = 0.25, 60.0, 60.0, 15.0
    started = time.perf_counter()
    drain_limit = duration + 900.0  # a trip on the large map takes minutes, not a quarter of an hour
    while clock.now() < duration or (args.drain and trips.in_trip() and clock.now() < drain_limit):
        trips.closing = clock.now() >= duration
        clock.advance(period)
        if speed:
            lag = clock.now() / speed - (time.perf_counter() - started)
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
