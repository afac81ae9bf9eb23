"""`fleet sim`: the whole warehouse in simulated time (scheduler, traffic control,
emulated robots, simulated operators) and its KPIs (docs/kpis.md)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sim", help="simulate the warehouse for some hours and report its KPIs")
    parser.add_argument("--map", required=True, dest="map_path", help="map file (TOML)")
    parser.add_argument("--robots", type=int, required=True, help="how many robots")
    parser.add_argument("--hours", type=float, required=True, help="simulated hours")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stock, the order stream and the operators")
    parser.add_argument("--orders-per-hour", type=float, default=600.0, help="order arrival rate (default 600)")
    parser.add_argument("--inbound-per-hour", type=float, default=4.0, help="inbound notes per hour (default 4)")
    parser.add_argument("--batching", choices=["fcfs", "greedy", "optimal"], default="greedy",
                        help="order release strategy; fcfs is the baseline without batching (default greedy)")
    parser.add_argument("--slotting", action="store_true",
                        help="a shelf leaving a port takes the nearer home of a shelf now at a port (they swap homes): "
                             "shelves in demand gather near the stations")
    parser.add_argument("--seconds-per-pick", type=float, default=6.0, help="operator seconds per pick (mean)")
    parser.add_argument("--order-shelves", type=int, default=None,
                        help="order shelves in each pick port's put wall (default: SimConfig's, 8)")
    parser.add_argument("--seconds-per-stow", type=float, default=10.0, help="operator seconds per stow put (mean)")
    parser.add_argument("--period", type=float, default=0.25, help="control cycle in simulated seconds (default 0.25)")
    parser.add_argument("--dt", type=float, default=0.05, help="emulator physics step in seconds (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fleet.scheduler.batching import Batching
    from fleet.simulation import SimConfig, Simulation, progress_bar
    from maps import load_map
    from maps.loader import MapError

    try:
        wmap = load_map(args.map_path)
        config = SimConfig(robots=args.robots, hours=args.hours, seed=args.seed,
                           orders_per_hour=args.orders_per_hour, inbound_notes_per_hour=args.inbound_per_hour,
                           batching=Batching(args.batching), slotting=args.slotting, seconds_per_pick=args.seconds_per_pick,
                           seconds_per_stow=args.seconds_per_stow, control_period_s=args.period,
                           physics_dt_s=args.dt, **({} if args.order_shelves is None else
                                                    {"order_shelves_per_port": args.order_shelves}))
        sim = Simulation(wmap, config)
    except (MapError, OSError, ValueError) as exc:
        print(f"fleet sim: {exc}", file=sys.stderr)
        return 2
    kpis = sim.run(None if args.quiet else progress_bar())
    if args.plot:
        for path in sim.plot(Path(args.plot)):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(kpis))
    else:
        _summary(kpis)
    return 0


def _summary(kpis: dict) -> None:
    stations = kpis.pop("stations")
    width = max(len(k) for k in kpis)
    for key, value in kpis.items():
        print(f"{key:<{width}}  {value}")
    print()
    print(f"{'station':<10} {'kind':<5} {'lines/h':>8} {'present.':>8} {'util.':>6}")
    for name, s in stations.items():
        print(f"{name:<10} {s['kind']:<5} {s['lines_per_hour']:>8} {s['presentations']:>8} {s['utilisation']:>6.1%}")
