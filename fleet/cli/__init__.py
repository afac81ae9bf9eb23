"""The `fleet` command. Each subcommand lives in its own module here and registers itself.

Subcommand modules keep heavy imports inside their run functions, so `fleet --help`
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules in fleet.cli that each define `register(subparsers)`.
COMMANDS = ["map", "bench", "emulate", "demo", "hil", "sim", "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="Fleet control for a goods-to-person warehouse of under-ride robots.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"fleet.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
