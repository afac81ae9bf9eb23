"""`fleet serve --config PATH`: the control-room service (runtime, API, console) in the
foreground until interrupted. docs/service.md and docs/config.md describe it."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the control-room service and its console")
    parser.add_argument("--config", help="settings file (TOML, docs/config.md); FLEET_* variables override it")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from fleet.service import logs
    from fleet.service.config import ConfigError, load_settings

    logs.configure()
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"fleet serve: {exc}", file=sys.stderr)
        return 2
    if not settings.users:
        print("fleet serve: no users configured: nobody could log in (see docs/config.md, [[users]])", file=sys.stderr)
        return 2
    from fleet.service.app import Service  # heavy (traffic control, emulator): after the settings are good
    from maps import MapError

    try:
        service = Service(settings)
    except (MapError, FileNotFoundError, ValueError) as exc:
        print(f"fleet serve: {exc}", file=sys.stderr)
        return 2
    service.run(ready=lambda: print(f"fleet serve: console at {service.url}", file=sys.stderr, flush=True))
    return 0
