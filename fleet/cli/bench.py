"""`fleet bench routing|mapf`: planner benchmarks that print one JSON object.

Wall-clock time is measured here (how long planning takes is the point), never inside
the planner, which runs on steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmark the traffic planner (prints one JSON object)")
    benches = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)

    routing = benches.add_parser("routing", help="lifelong routing: endless random errands for N robots")
    routing.add_argument("--map", required=True, help="our .toml map or a MovingAI .map file")
    routing.add_argument("--agents", type=int, required=True)
    routing.add_argument("--steps", type=int, required=True)
    routing.add_argument("--rotation", action="store_true", help="each step: forward, turn 90 degrees, or wait")
    routing.add_argument("--endpoints", help="file of goal cells, one 'x y' per line (default: all free cells)")
    routing.add_argument("--starts", help="file of start cells, one 'x y' per line (default: random free cells)")
    routing.add_argument("--street-penalty", type=int, default=1,
                         help="cost of a step against a row's or column's direction in the guidance (1 = no streets)")
    routing.add_argument("--guidance", choices=("shortest", "flow"), default="shortest",  # planner.GUIDANCE
                         help="what robots follow: the floor's shortest ways, or guide paths round each other's (flow)")
    routing.add_argument("--seed", type=int, default=0)
    add_routing_rules(routing)
    routing.set_defaults(run=_routing)

    mapf = benches.add_parser("mapf", help="one-shot MAPF on a MovingAI map and scenario")
    mapf.add_argument("--map", required=True, help="MovingAI .map file")
    mapf.add_argument("--scen", required=True, help="MovingAI .scen file")
    mapf.add_argument("--agents", type=int, required=True)
    mapf.add_argument("--time-limit", type=float, default=30.0, help="seconds")
    mapf.add_argument("--following", action="store_true",
                      help="allow entering a cell in the step its occupant leaves (the MAPF convention)")
    mapf.add_argument("--seed", type=int, default=0)
    mapf.set_defaults(run=_mapf)


#: The planner's valued options: (option, type, metavar, help). Left out, run_lifelong's
#: defaults hold.
_VALUED_RULES = (
    ("lag-after", int, "STEPS", "after this many steps without getting closer to its goal, a robot gains a step of "
                                "priority per further step (default: off)"),
    ("window", int, "STEPS", "keep a plan this many steps ahead and improve it by large neighbourhood search in the "
                             "time each step leaves (default: off, PIBT alone)"),
    ("window-searches", int, "N", "neighbourhoods of robots replanned per step to improve the window's plan "
                                  "(default 300)"),
    ("window-ms", float, "MS", "cap on the time per step for improving the window's plan (default 40)"),
    ("contraflow", int, "COST", "with --guidance flow: cost a move gains per guide path making the opposite move "
                                "(default 4)"),
    ("crowding", int, "PATHS", "with --guidance flow: a move costs one more per this many guide paths entering "
                               "its cell (0: none; default 3)"),
)


def add_routing_rules(parser: argparse.ArgumentParser, prefix: str = "", table_memory: float = 2.0) -> None:
    """Options for the floor a routing run plans on and the planner's rules, shared with
    benchmarks/routing.py (whose `prefix` "scale-" says they act on its 500 x 140 runs only)."""
    parser.add_argument(f"--{prefix}following", action="store_true",
                        help="allow entering a cell in the step its occupant leaves (off on our floors)")
    parser.add_argument(f"--{prefix}one-way-aisles", action="store_true",
                        help="drive one-wide aisles only in their lane's direction (as loaded robots do)")
    parser.add_argument(f"--{prefix}two-lane-roads", action="store_true",
                        help="also drive two-wide roads as two one-way lanes, keeping right (implies one-way aisles)")
    for option, kind, metavar, text in _VALUED_RULES:
        parser.add_argument(f"--{prefix}{option}", type=kind, metavar=metavar, help=text)
    parser.add_argument("--table-memory", type=float, default=table_memory, metavar="GB",
                        help="cap on cached distance tables (1.1 MB per goal with rotation on 500 x 140)")


def routing_rules(args: argparse.Namespace, prefix: str = "") -> dict:
    """run_lifelong's keyword arguments for the options of `add_routing_rules`."""
    name = prefix.replace("-", "_")
    rules = {"following": getattr(args, f"{name}following"),
             "one_way_aisles": getattr(args, f"{name}one_way_aisles"),
             "two_lane_roads": getattr(args, f"{name}two_lane_roads"), "table_memory_gb": args.table_memory}
    for option, *_ in _VALUED_RULES:
        value = getattr(args, name + option.replace("-", "_"))
        if value is not None:
            rules[option.replace("-", "_")] = value
    return rules


def _load(path: str):
    from maps import load_map
    from maps.movingai import load_movingai

    return load_movingai(path) if Path(path).suffix == ".map" else load_map(path)


def _fail(message: str) -> int:
    print(json.dumps({"error": message}))
    return 2


def _routing(args: argparse.Namespace) -> int:
    from fleet.traffic.lifelong import run_lifelong
    from fleet.traffic.scenario import ScenarioError, read_cells
    from maps import MapError

    if args.agents < 1 or args.steps < 1:
        return _fail("--agents and --steps must be at least 1")
    if args.table_memory <= 0:
        return _fail("--table-memory must be a positive number of GB")
    try:
        wmap = _load(args.map)
        endpoints = read_cells(args.endpoints, wmap) if args.endpoints else None
        starts = read_cells(args.starts, wmap) if args.starts else None
        report = run_lifelong(wmap, args.agents, args.steps, args.rotation, endpoints, starts, args.seed,
                              street_penalty=args.street_penalty, guidance=args.guidance, **routing_rules(args))
    except (MapError, ScenarioError, ValueError) as exc:
        return _fail(str(exc))
    print(json.dumps(report))
    return 0


def _mapf(args: argparse.Namespace) -> int:
    from fleet.traffic.scenario import ScenarioError, read_scenario, run_mapf
    from maps import MapError
    from maps.movingai import load_movingai

    if args.agents < 1 or args.time_limit <= 0:
        return _fail("--agents must be at least 1 and --time-limit positive")
    try:
        wmap = load_movingai(args.map)
        starts, goals = read_scenario(args.scen, wmap, args.agents)
        report = run_mapf(wmap, starts, goals, args.time_limit, args.following, args.seed)
    except (MapError, ScenarioError, ValueError) as exc:
        return _fail(str(exc))
    print(json.dumps(report))
    return 0
