"""`fleet emulate`: robots placed on parking then aisle cells, run unpaced, summarised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_emulator.placement import start_cells
from fleet.cli import main
from maps import CellKind, load_map

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def test_emulate_runs_wandering_robots_and_prints_json_summaries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--map", TINY, "--robots", "3", "--speed", "0", "--duration", "20",
                 "--wander", "--json", "--report-every", "10", "--seed", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["time"] for r in lines] == [10.0, 20.0]
    assert all(r["robots"] == 3 for r in lines)
    assert lines[-1]["mean_charge"] < 1.0
    assert sum(lines[-1]["states"].values()) == 3
    assert lines[-1]["collisions"] == 0


def test_emulate_injects_seeded_faults(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["emulate", "--map", TINY, "--robots", "3", "--speed", "0", "--duration", "30", "--wander", "--json",
            "--report-every", "30", "--faults", "600", "--seed", "2"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # seeded: the same run twice
    states = json.loads(first.splitlines()[-1])["states"]
    assert set(states) - {"idle", "driving", "turning"}  # 30 faults per robot-minute leave marks


def test_robots_start_on_parking_then_aisle_cells() -> None:
    wmap = load_map(TINY)
    cells = start_cells(wmap, 4)
    assert wmap.kind(cells[0]) is CellKind.PARKING
    assert all(wmap.kind(c) is CellKind.AISLE for c in cells[1:])
    with pytest.raises(ValueError, match="room for"):
        start_cells(wmap, 1000)


@pytest.mark.parametrize("argv, message", [
    (["--robots", "500", "--speed", "0", "--duration", "1"], "room for"),
    (["--robots", "2", "--speed", "-1", "--duration", "1"], "--speed must be >= 0"),
    (["--robots", "2", "--speed", "0"], "give --duration"),
    (["--robots", "2", "--speed", "0", "--duration", "0"], "--duration must be positive"),
    (["--robots", "2", "--speed", "0", "--duration", "1", "--faults", "-1"], "--faults must be >= 0"),
    (["--robots", "2", "--speed", "0", "--duration", "1", "--profile", "/nonexistent/profile.toml"],
     "cannot read profile"),
])
def test_bad_options_give_a_clear_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--map", TINY, *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_broken_map_lists_its_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\npitch = 1.0\nlayout = '''\n#Z#\n'''\n")
    assert main(["emulate", "--map", str(bad), "--robots", "1", "--speed", "0", "--duration", "1"]) == 1
    assert "bad.toml" in capsys.readouterr().err
