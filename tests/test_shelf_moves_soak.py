"""Issue 5's end-to-end check, at test size: many emulated robots move shelves on the
medium map with injected slow-downs, motor stalls and a communication loss. The emulator,
an independent witness, must count no collision and no laser stop; every trip must
finish (or be reported blocked with a reason). The hour-long version is
benchmarks/traffic_soak.py."""

import json

from fleet.cli import main
from maps import SHIPPED


def test_fifty_robots_move_shelves_with_faults_without_collision_and_every_trip_finishes(capsys):
    code = main(["demo", "--headless", "--map", str(SHIPPED / "medium.toml"), "--robots", "50",
                 "--duration", "240", "--faults", "--drain", "--seed", "7", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["collisions"] == 0
    assert summary["laser_stops"] == 0, "a robot relied on its laser: traffic control let it near something"
    assert summary["trips_failed"] == []
    assert summary["trips_in_progress"] == 0 or summary["blocked"], summary
    assert summary["trips_done"] >= 40, summary
