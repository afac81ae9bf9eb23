"""One-shot MAPF targets of the traffic issue: prints one JSON object.

warehouse-10-20-10-2-1 (MovingAI), random-1..5 scenarios, 100 / 200 / 400 robots, each
run as `fleet bench mapf` would (planned with LaCAM over PIBT, executed through the
reservation table without following unless --following, then improved by large
neighbourhood search for the rest of --time-limit), plus a summary per size: the first
solution's time and cost ratio, and the cost ratio at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from fleet.traffic.scenario import read_scenario, run_mapf
from maps.movingai import load_movingai

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "movingai"  # shared/ sits beside the repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the MovingAI maps")
    parser.add_argument("--map", default="warehouse-10-20-10-2-1")
    parser.add_argument("--agents", type=int, nargs="*", default=[100, 200, 400])
    parser.add_argument("--scenarios", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--following", action="store_true")
    args = parser.parse_args()

    folder = args.data / args.map
    wmap = load_movingai(folder / f"{args.map}.map")
    runs, summary = [], []
    for agents in args.agents:
        batch = []
        for number in args.scenarios:
            starts, goals = read_scenario(folder / f"{args.map}-random-{number}.scen", wmap, agents)
            report = run_mapf(wmap, starts, goals, args.time_limit, args.following)
            report["scenario"] = number
            report.pop("conflicts", None)
            batch.append(report)
        solved = [r for r in batch if r["solved"]]
        summary.append({
            "agents": agents,
            "solved_percent": 100 * len(solved) / len(batch),
            "first_solution_ms_median": statistics.median(r["first_solution_ms"] for r in solved) if solved else None,
            "ratio_first_median": statistics.median(r["ratio_first"] for r in solved) if solved else None,
            "ratio_median": statistics.median(r["ratio"] for r in solved) if solved else None,
            "refine_iterations_median": statistics.median(r["refine_iterations"] for r in solved) if solved else None,
            "collisions": sum(r["collisions"] + r["collisions_first"] for r in solved),
        })
        runs += batch
    print(json.dumps({"benchmark": "mapf", "map": args.map, "following": args.following, "summary": summary,
                      "runs": runs}))


if __name__ == "__main__":
    main()
