"""How long generating and checking a LoRR-sized floor (500 x 140 cells) takes.

The target is well under 10 s for `fleet map generate` and a quick `fleet map check`, so
that large floors can be made and validated on the spot. Prints one JSON object with
medians over --repeats runs (the machine is shared: medians, not means).

    .venv/bin/python benchmarks/map_generation.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maps import CellKind, dump_map, load_map  # noqa: E402
from maps.generator import LayoutSpec, generate_layout  # noqa: E402

SPEC = LayoutSpec(
    name="lorr-sized", width=500, height=140, block_rows=None, block_columns=None, ring_width=2, one_way=True,
    pick_stations=20, stow_stations=10, queue_length=5, chargers=200, parking=1000, packing=16,
)
GENERATE_ARGV = [
    "map", "generate", "--name", "lorr-sized", "--width", "500", "--height", "140", "--ring-width", "2", "--one-way",
    "--pick-stations", "20", "--stow-stations", "10", "--queue-length", "5", "--chargers", "200",
    "--parking", "1000", "--packing", "16",
]


def _timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    fleet = [sys.executable, "-m", "fleet"]
    runs: dict[str, list[float]] = {"generate_s": [], "load_and_check_s": [], "cli_generate_s": [], "cli_check_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floor.toml"
        for _ in range(args.repeats):
            seconds, wmap = _timed(lambda: generate_layout(SPEC))
            runs["generate_s"].append(seconds)
            path.write_text(dump_map(wmap), encoding="utf-8")
            runs["load_and_check_s"].append(_timed(lambda: load_map(path))[0])
            seconds, proc = _timed(lambda: subprocess.run([*fleet, *GENERATE_ARGV, "-o", str(path)], cwd=ROOT,
                                                          capture_output=True, text=True))
            assert proc.returncode == 0, proc.stderr
            runs["cli_generate_s"].append(seconds)
            seconds, proc = _timed(lambda: subprocess.run([*fleet, "map", "check", str(path)], cwd=ROOT,
                                                          capture_output=True, text=True))
            assert proc.returncode == 0, proc.stdout
            runs["cli_check_s"].append(seconds)
    print(json.dumps({
        "benchmark": "map_generation",
        "floor": {"width": wmap.width, "height": wmap.height, "storage": wmap.count(CellKind.STORAGE),
                  "parking": wmap.count(CellKind.PARKING), "stations": len(wmap.stations), "one_way_cells": len(wmap.one_way)},
        "repeats": args.repeats,
        **{f"median_{key}": round(statistics.median(values), 3) for key, values in runs.items()},
        **{f"max_{key}": round(max(values), 3) for key, values in runs.items()},
        "target_s": 10.0,
    }))


if __name__ == "__main__":
    main()
