"""`fleet map ...`: check, generate and render map files."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("map", help="check, generate and render warehouse maps")
    maps = parser.add_subparsers(dest="map_command", metavar="ACTION", required=True)

    check = maps.add_parser("check", help="validate a map file; print a summary or every problem")
    check.add_argument("path")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    from maps import MapError, load_map

    try:
        wmap = load_map(args.path)
    except MapError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {args.path}")
        return 1
    summary = wmap.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{wmap.name}: {wmap.width} x {wmap.height} cells, pitch {wmap.pitch} m ({args.path})")
    for kind, count in summary["cells"].items():
        print(f"  {kind:<8} {count}")
    if summary["one_way_cells"]:
        print(f"  one-way  {summary['one_way_cells']}")
    print(f"  stations: {len(wmap.stations)}")
    for st in wmap.stations:
        print(f"    {st.id:<10} {st.kind.value:<4} working {st.working}, queue of {len(st.queue)}, operator {st.operator_side.name.lower()}")
    return 0
