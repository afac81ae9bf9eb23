"""Traffic control soaked end to end (issue 5): robots move shelves on the medium map
for a simulated hour with injected slow-downs, motor stalls and a communication loss,
then finish the trips under way. Prints one JSON object: fleet demo's summary (trips,
collisions and laser stops counted by the emulator, blocked robots with reasons, wall
and simulated time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

from fleet.cli import main as fleet
from maps import SHIPPED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--robots", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--map", default=str(SHIPPED / "medium.toml"))
    args = parser.parse_args()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = fleet(["demo", "--headless", "--map", args.map, "--robots", str(args.robots),
                      "--duration", str(args.seconds), "--faults", "--drain", "--seed", str(args.seed), "--json"])
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    summary["exit_code"] = code
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
