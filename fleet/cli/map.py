"""`fleet map ...`: check, generate and render map files."""

from __future__ import annotations

import argparse
import json
import sys

#: Layout options of `fleet map generate`, as (flag, LayoutSpec field, type, help).
_LAYOUT_OPTIONS = [
    ("--name", "name", str, "map name"),
    ("--description", "description", str, "one-line description stored in the file"),
    ("--width", "width", int, "exact width in cells (fits as many block columns as possible)"),
    ("--height", "height", int, "exact height in cells (fits as many block rows as possible)"),
    ("--block-rows", "block_rows", int, "rows of storage blocks (instead of --height)"),
    ("--block-columns", "block_columns", int, "columns of storage blocks (instead of --width)"),
    ("--block-depth", "block_depth", int, "shelves across a block: 1 or 2"),
    ("--block-length", "block_length", int, "shelves along a block"),
    ("--aisle-width", "aisle_width", int, "cells between blocks"),
    ("--ring-width", "ring_width", int, "lanes of the ring road around the storage area"),
    ("--pick-stations", "pick_stations", int, "pick stations on the south edge"),
    ("--stow-stations", "stow_stations", int, "stow stations on the north edge"),
    ("--queue-length", "queue_length", int, "queue cells per station (per working cell)"),
    ("--working-cells", "working_cells", int, "working cells per station: 1, or 2 (each with its own queue)"),
    ("--chargers", "chargers", int, "chargers on the west and east edges"),
    ("--parking", "parking", int, "parking cells"),
    ("--packing", "packing", int, "packing area cells on the south edge"),
    ("--pitch", "pitch", float, "cell pitch in metres"),
    ("--qr-prefix", "qr_prefix", str, "prefix of every QR id"),
]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("map", help="check, generate and render warehouse maps")
    maps = parser.add_subparsers(dest="map_command", metavar="ACTION", required=True)

    check = maps.add_parser("check", help="validate a map file; print a summary or every problem")
    check.add_argument("path")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(run=_check)

    generate = maps.add_parser(
        "generate", help="write a generated goods-to-person floor (or a shipped preset, or RHCR's kiva floor)",
        description="Start from --preset (default: demo) and override any layout option. "
                    "--preset kiva is RHCR's fixed Kiva floor and takes no layout options.",
    )
    generate.add_argument("-o", "--output", required=True, help="map file to write (.toml)")
    generate.add_argument("--preset", default="demo", help="demo, medium, large or kiva")
    for flag, _, kind, text in _LAYOUT_OPTIONS:
        generate.add_argument(flag, type=kind, default=None, help=text)
    generate.add_argument("--one-way", action=argparse.BooleanOptionalAction, default=None,
                          help="one-way outer lane on the ring road (needs --ring-width 2 or more)")
    generate.add_argument("--counterflow", action=argparse.BooleanOptionalAction, default=None,
                          help="with --one-way: the inner ring lane along the station edges one-way the other way")
    generate.add_argument("--endpoints", metavar="FILE",
                          help="also write the task endpoints as `x y` lines (storage cells; kiva: RHCR's endpoints)")
    generate.add_argument("--homes", metavar="FILE",
                          help="also write robot start cells as `x y` lines (parking cells; kiva: RHCR's home cells)")
    generate.set_defaults(run=_generate)

    render = maps.add_parser("render", help="draw a map file (.toml, or MovingAI .map) to an image")
    render.add_argument("path")
    render.add_argument("-o", "--output", required=True, help="image file to write (e.g. map.png)")
    render.add_argument("--title", help="title instead of the generated one")
    render.add_argument("--dpi", type=int, default=100)
    render.set_defaults(run=_render)


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
        print(f"    {st.id:<10} {st.kind.value:<4} working {', '.join(map(str, st.working))}, queues of {'+'.join(str(len(q)) for q in st.queues)}, operator {st.operator_side.name.lower()}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from maps import CellKind, dump_map
    from maps.generator import PRESETS, LayoutError, generate_layout, kiva_layout, write_cells

    overrides = {field: getattr(args, field) for _, field, _, _ in _LAYOUT_OPTIONS if getattr(args, field) is not None}
    for flag in ("one_way", "counterflow"):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    try:
        if args.preset == "kiva":
            if overrides:
                raise LayoutError(f"the kiva floor is fixed; drop {', '.join(sorted(overrides))}")
            kiva = kiva_layout()
            wmap, endpoints, homes = kiva.map, kiva.endpoints, kiva.homes
        else:
            if args.preset not in PRESETS:
                raise LayoutError(f"unknown preset {args.preset!r}; choose from {', '.join([*PRESETS, 'kiva'])}")
            # A size given for an axis replaces the preset's block count on that axis, and back.
            for size, count in (("width", "block_columns"), ("height", "block_rows")):
                if size in overrides and count in overrides:
                    raise LayoutError(f"give --{size} or --{count.replace('_', '-')}, not both")
                if size in overrides:
                    overrides[count] = None
                elif count in overrides:
                    overrides[size] = None
            # A changed floor is no longer the preset: it takes the output's name, not the preset's words.
            if set(overrides) - {"name", "description"}:
                overrides.setdefault("description", "")
            overrides.setdefault("name", Path(args.output).stem)
            wmap = generate_layout(replace(PRESETS[args.preset], **overrides))
            endpoints, homes = wmap.cells_of(CellKind.STORAGE), wmap.cells_of(CellKind.PARKING)
    except LayoutError as exc:
        print(f"fleet map generate: {exc}", file=sys.stderr)
        return 1
    Path(args.output).write_text(dump_map(wmap), encoding="utf-8")
    if args.endpoints:
        write_cells(args.endpoints, endpoints)
    if args.homes:
        write_cells(args.homes, homes)
    print(f"wrote {args.output}: {wmap.name}, {wmap.width} x {wmap.height} cells, {len(wmap.stations)} stations, "
          f"{wmap.count(CellKind.STORAGE)} storage, {wmap.count(CellKind.CHARGER)} chargers, "
          f"{wmap.count(CellKind.PARKING)} parking")
    return 0


def _render(args: argparse.Namespace) -> int:
    from maps import MapError, load_map
    from maps.movingai import load_movingai
    from maps.render import render_map

    loader = load_movingai if args.path.lower().endswith(".map") else load_map
    try:
        wmap = loader(args.path)
    except MapError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {args.path}")
        return 1
    render_map(wmap, args.output, title=args.title, dpi=args.dpi)
    print(f"wrote {args.output}")
    return 0
