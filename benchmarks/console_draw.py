"""The console in headless Chromium with N robots on a map (issue 7: smooth at 1,000
robots on the large map). Prints one JSON object: canvas frame draw time (median, p95 ms)
while robots move, live messages applied per second, and robots shown.

    .venv/bin/python benchmarks/console_draw.py --robots 1000 --map large --seconds 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from playwright.sync_api import sync_playwright

from fleet.service.app import Service
from fleet.service.auth import hash_password
from fleet.service.config import Settings, User

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", type=int, default=1000)
    parser.add_argument("--map", default="large")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--screenshot", help="save a screenshot of the console here at the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate({"map": {"name": args.map}, "robots": {"emulated": args.robots},
                                            "database": {"url": f"sqlite:///{tmp}/fleet.db"}, "console": {"port": 0}})
        settings.users = [User(name="ann", role="viewer", password_hash=hash_password("pw"))]
        service = Service(settings)
        service.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                page.goto(service.url)
                page.fill("#login-user", "ann")
                page.fill("#login-password", "pw")
                page.click("#login-submit")
                page.wait_for_function(f"window.fleetConsole.robots.size === {args.robots}", timeout=60000)
                page.wait_for_function("window.fleetConsole.t > 2", timeout=180000)  # first cycles, JIT done
                page.evaluate("window.fleetConsole.drawMs.length = 0")
                updates0, started = page.evaluate("window.fleetConsole.updates"), time.perf_counter()
                page.wait_for_timeout(args.seconds * 1000)
                wall = time.perf_counter() - started
                draws = page.evaluate("window.fleetConsole.drawMs")
                updates = page.evaluate("window.fleetConsole.updates") - updates0
                if args.screenshot:
                    page.screenshot(path=args.screenshot)
                browser.close()
        finally:
            service.stop()
    draws.sort()
    print(json.dumps({"map": args.map, "robots": args.robots, "frames": len(draws),
                      "draw_ms_median": round(statistics.median(draws), 2) if draws else None,
                      "draw_ms_p95": round(draws[int(0.95 * (len(draws) - 1))], 2) if draws else None,
                      "frames_per_s": round(len(draws) / wall, 1), "updates_per_s": round(updates / wall, 1)}))


if __name__ == "__main__":
    main()
