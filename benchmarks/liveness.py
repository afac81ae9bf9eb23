"""Traffic control's liveness, soaked: thousands of random errand runs with random delays.

The property test in tests/test_traffic_control.py draws a dozen cases per `make test`; a
livelock that one case in a few hundred hits (the make-way detour let go too soon, found
in the tenth session) fails CI only now and then. This runs the same executor (imported
from that test, so the check is the test's own: nobody enters a cell another holds or
stands on, everyone reaches every goal) over many more cases, wider than the test draws:
up to 20 robots with four goals each, up to three robots stopped for a while, both the
small floor and the aisles floor, any planning window and grant horizon. Prints one JSON
object: cases, failures (each with the arguments that replay it), seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from fleet.traffic.control import TrafficControl
from maps import Heading, parse_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_traffic_control import AISLES, SMALL, _run  # noqa: E402  (the test's own executor)

FLOORS = {"small": SMALL, "aisles": AISLES}


def errands(seed: int, robots: int, p_move: float, rotation: bool, floor: str, rounds: int) -> None:
    """One run; raises AssertionError on a collision or a robot that never arrives."""
    wmap = parse_map(FLOORS[floor])
    rng = random.Random(seed)
    free = [c for c in wmap.cells() if wmap.traversable(c)]
    robots = min(robots, len(free) // 4)
    tc = TrafficControl(wmap, rotation=rotation, window=rng.choice([1, 2, 3]), max_ahead=rng.choice([1, 2, 3, 4]),
                        seed=seed)
    for i, cell in enumerate(rng.sample(free, robots)):
        tc.add_robot(f"r{i}", cell, Heading(rng.randrange(4)))
    cells = rng.sample(free, 4 * robots)
    goals = {f"r{i}": cells[4 * i: 4 * i + 4] for i in range(robots)}
    stopped = {}
    for robot in rng.sample(sorted(goals), min(3, robots)):
        start = rng.randrange(60)
        stopped[robot] = (start, start + rng.randrange(5, 60))
    _run(tc, goals, rng, p_move, rounds, stopped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0, help="draws the cases")
    parser.add_argument("--rounds", type=int, default=4000, help="rounds a case may take before it counts as stuck")
    args = parser.parse_args()
    draw = random.Random(args.seed)
    failures = []
    began = time.perf_counter()
    for _ in range(args.cases):
        case = {"seed": draw.randrange(10**6), "robots": draw.randrange(4, 21), "p_move": draw.uniform(0.2, 1.0),
                "rotation": draw.random() < 0.5, "floor": draw.choice(sorted(FLOORS))}
        try:
            errands(**case, rounds=args.rounds)
        except AssertionError as exc:
            failures.append({**case, "error": str(exc)[:300]})
    print(json.dumps({"benchmark": "liveness", "cases": args.cases, "seed": args.seed, "failures": failures,
                      "seconds": round(time.perf_counter() - began, 1)}))


if __name__ == "__main__":
    main()
