"""Lifelong routing targets of the traffic issue, in one run: prints one JSON object.

- RHCR's Kiva floor (maps/kiva.toml, tasks between the 480 endpoints, robots starting on
  the home cells in file order), 100 and 190 robots, with and without rotation.
- With --with-following, the Kiva runs again with following allowed, the rule RHCR and
  the League of Robot Runners use (our floors forbid it; see docs/traffic.md).
- --guidance flow: every run follows traffic flow guide paths (fleet/traffic/guidance.py)
  instead of the floor's shortest ways.
- --kiva-window 0 10: the Kiva runs with PIBT alone and again with the windowed search
  over 10 steps (fleet/traffic/window.py).
- Scale: a generated 500 x 140 warehouse with every storage cell treated as a shelf
  standing there (loaded robots, the hard case: only aisles are free, as on the League
  of Robot Runners' warehouse_large), tasks between aisle cells beside shelves.

Each entry is run_lifelong's report (the same as `fleet bench routing`); the Kiva ones
can be reproduced one by one with
    fleet bench routing --map maps/kiva.toml --endpoints benchmarks/data/kiva-endpoints.txt \\
        --starts benchmarks/data/kiva-homes.txt --street-penalty 4 --agents 100 --steps 5000 \
        [--rotation] [--following] [--guidance flow] [--window 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fleet.cli.bench import add_routing_rules, routing_rules
from fleet.traffic.guidance import CONTRAFLOW, CROWDING
from fleet.traffic.lifelong import run_lifelong
from fleet.traffic.planner import GUIDANCE
from fleet.traffic.scenario import read_cells
from fleet.traffic.window import SEARCHES
from maps import load_map
from maps.generator import LayoutSpec, generate_layout
from maps.model import KIND_CODES, Cell, CellKind, WarehouseMap

ROOT = Path(__file__).resolve().parent.parent


def shelved(wmap: WarehouseMap) -> tuple[WarehouseMap, list[Cell]]:
    """The floor with a shelf on every storage cell, and the free cells beside shelves."""
    kinds = wmap.kinds.copy()
    storage = kinds == KIND_CODES[CellKind.STORAGE]
    kinds[storage] = KIND_CODES[CellKind.BLOCKED]
    free = kinds != KIND_CODES[CellKind.BLOCKED]
    beside = np.zeros_like(storage)
    beside[1:, :] |= storage[:-1, :]
    beside[:-1, :] |= storage[1:, :]
    beside[:, 1:] |= storage[:, :-1]
    beside[:, :-1] |= storage[:, 1:]
    endpoints = [Cell(int(x), int(y)) for y, x in zip(*np.nonzero(beside & free))]
    floor = WarehouseMap(name=f"{wmap.name}-shelved", width=wmap.width, height=wmap.height, pitch=wmap.pitch,
                         kinds=kinds, one_way=dict(wmap.one_way))
    return floor, endpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps of the Kiva runs")
    parser.add_argument("--scale-steps", type=int, default=500, help="steps of the 500 x 140 runs")
    parser.add_argument("--scale-agents", type=int, nargs="*", default=[1000], help="robot counts on 500 x 140")
    parser.add_argument("--scale-without-rotation", action="store_true",
                        help="500 x 140 without rotation (a quarter of the table memory per goal)")
    # 10,000 robots' goals take 11 GB of tables on 500 x 140.
    add_routing_rules(parser, prefix="scale-", table_memory=14.0)
    parser.add_argument("--kiva-agents", type=int, nargs="*", default=[100, 190])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kiva-street-penalty", type=int, default=4, help="streets on Kiva (measured to help there)")
    parser.add_argument("--plot", metavar="PNG", help="also draw Kiva throughput against robot count into PNG")
    parser.add_argument("--with-following", action="store_true",
                        help="also run Kiva with following allowed (RHCR's and the League's rule)")
    parser.add_argument("--guidance", choices=GUIDANCE, nargs="+", default=[GUIDANCE[0]],
                        help="what robots follow: the floor's shortest ways, or traffic flow guide paths (each given)")
    parser.add_argument("--kiva-window", type=int, nargs="+", default=[0], metavar="STEPS",
                        help="Kiva with the windowed search over this many steps (0: PIBT alone; each given)")
    parser.add_argument("--kiva-window-searches", type=int, default=SEARCHES, metavar="N",
                        help="neighbourhoods the windowed search replans per step on Kiva")
    parser.add_argument("--kiva-contraflow", type=int, default=CONTRAFLOW, help="flow guidance weight on Kiva")
    parser.add_argument("--kiva-crowding", type=int, default=CROWDING, help="flow guidance weight on Kiva")
    args = parser.parse_args()

    kiva = load_map(ROOT / "maps" / "kiva.toml")
    endpoints = read_cells(ROOT / "benchmarks" / "data" / "kiva-endpoints.txt", kiva)
    homes = read_cells(ROOT / "benchmarks" / "data" / "kiva-homes.txt", kiva)
    runs = []
    for guidance in args.guidance:
        for window in args.kiva_window:
            for following in (False, True) if args.with_following else (False,):
                for agents in args.kiva_agents:
                    for rotation in (False, True):
                        runs.append(run_lifelong(kiva, agents, args.steps, rotation, endpoints, homes, args.seed,
                                                 following, args.kiva_street_penalty, guidance=guidance,
                                                 window=window or None, window_searches=args.kiva_window_searches,
                                                 contraflow=args.kiva_contraflow, crowding=args.kiva_crowding))
    if args.scale_agents:
        big, ends = shelved(generate_layout(LayoutSpec(name="warehouse-500x140", width=500, height=140)))
        for agents in args.scale_agents:
            runs.append(run_lifelong(big, agents, args.scale_steps, not args.scale_without_rotation, ends, None,
                                     args.seed, guidance=args.guidance[0], **routing_rules(args, "scale-")))
    if args.plot:
        plot(runs, Path(args.plot))
    print(json.dumps({"benchmark": "routing", "runs": runs}))


#: RHCR's published Kiva figures and the issue's targets (tasks per step), for the plot:
#: (robots, rotation) -> throughput. RHCR allows following; it planned nothing at 190
#: robots with rotation.
RHCR = {(100, True): 2.83, (100, False): 3.39, (190, False): 5.67}
TARGETS = {(100, True): 3.2, (190, True): 5.4, (190, False): 6.2}


def plot(runs: list[dict], path: Path) -> None:
    """Tasks per step against robots on Kiva, one line per rotation, following rule and
    guidance measured, beside the ceiling (every robot on a shortest path, nobody in the
    way), RHCR's figures and the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kiva = [r for r in runs if r["map"] == "kiva"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, rotation in zip(axes, (False, True)):
        rows = [r for r in kiva if r["rotation"] == rotation]
        for key in sorted({(r["following"], r["guidance"], r["window"] or 0) for r in rows}):
            following, guidance, window = key
            line = sorted((r for r in rows if (r["following"], r["guidance"], r["window"] or 0) == key),
                          key=lambda r: r["agents"])
            label = f"{guidance}{f' + window {window}' if window else ''}, {'following' if following else 'no following'}"
            ax.plot([r["agents"] for r in line], [r["throughput"] for r in line], "o-" if following else "o:",
                    label=label)
        ceiling = {r["agents"]: r["throughput_ceiling"] for r in rows}
        ax.plot(sorted(ceiling), [ceiling[a] for a in sorted(ceiling)], "k--", label="ceiling")
        for figures, marker, colour, label in ((RHCR, "s", "black", "RHCR (following)"),
                                               (TARGETS, "*", "gold", "target")):
            points = [(a, v) for (a, turning), v in figures.items() if turning == rotation]
            ax.scatter([a for a, _ in points], [v for _, v in points], marker=marker, s=90, color=colour,
                       edgecolors="black", zorder=3, label=label)
        ax.set_title(f"{'with' if rotation else 'without'} rotation")
        ax.set_xlabel("robots")
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("tasks finished per step")
    fig.suptitle(f"Kiva floor, lifelong PIBT, {kiva[0]['steps'] if kiva else 0} steps")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
