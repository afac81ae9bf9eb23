"""`fleet bench routing|mapf` print one JSON object with the promised fields, and refuse
bad input with a clear message instead of a traceback."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from fleet.cli import main

TINY = str(Path(__file__).parent / "data" / "tiny.toml")
MOVINGAI = """type octile
height 4
width 7
map
.......
.@@.@@.
.......
.......
"""
SCEN = """version 1
0\tsmall.map\t7\t4\t0\t0\t6\t3\t9
0\tsmall.map\t7\t4\t6\t0\t0\t3\t9
0\tsmall.map\t7\t4\t3\t3\t3\t0\t3
"""

ROUTING_FIELDS = {"agents", "steps", "tasks_finished", "throughput", "plan_ms_mean", "plan_ms_p50", "plan_ms_p99",
                  "plan_ms_max", "first_plan_ms", "collisions", "max_wait_steps", "throughput_ceiling"}
MAPF_FIELDS = {"solved", "sum_of_costs", "lower_bound", "ratio", "first_solution_ms", "collisions"}


def _run(capsys, *argv) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_routing_on_our_map_with_endpoint_and_start_files(tmp_path, capsys):
    (tmp_path / "ends.txt").write_text("1 3\n7 3\n4 1\n")
    (tmp_path / "starts.txt").write_text("# two robots\n2 1\n6 1\n")
    code, report = _run(capsys, "bench", "routing", "--map", TINY, "--agents", "2", "--steps", "40",
                        "--endpoints", str(tmp_path / "ends.txt"), "--starts", str(tmp_path / "starts.txt"),
                        "--rotation", "--seed", "4")
    assert code == 0
    assert ROUTING_FIELDS <= report.keys()
    assert report["agents"] == 2 and report["steps"] == 40 and report["rotation"] is True
    assert report["collisions"] == 0 and report["tasks_finished"] > 0


def test_routing_on_a_movingai_map(tmp_path, capsys):
    (tmp_path / "small.map").write_text(MOVINGAI)
    code, report = _run(capsys, "bench", "routing", "--map", str(tmp_path / "small.map"), "--agents", "5",
                        "--steps", "30")
    assert code == 0 and report["collisions"] == 0 and report["map"] == "small"


def test_routing_with_flow_guidance(capsys):
    code, report = _run(capsys, "bench", "routing", "--map", TINY, "--agents", "3", "--steps", "40",
                        "--guidance", "flow", "--following", "--rotation", "--contraflow", "2", "--crowding", "12")
    assert code == 0 and report["guidance"] == "flow"
    assert report["flow_weights"] == {"contraflow": 2, "crowding": 12}
    assert report["collisions"] == 0 and report["tasks_finished"] > 0


def test_routing_with_the_windowed_search_reports_its_work(capsys):
    code, report = _run(capsys, "bench", "routing", "--map", TINY, "--agents", "3", "--steps", "40", "--rotation",
                        "--window", "4", "--window-searches", "20", "--window-ms", "1000")
    assert code == 0 and report["collisions"] == 0 and report["tasks_finished"] > 0
    assert report["window"] == 4 and report["window_searches_per_step"] == 20
    assert 0 < report["window_searches"]["replanned"] <= 40 * (20 + 3)  # searches, and robots with new goals
    code, plain = _run(capsys, "bench", "routing", "--map", TINY, "--agents", "3", "--steps", "40", "--rotation")
    assert plain["window"] is None and plain["window_searches"] is None


def test_the_cli_offers_the_planners_guidance_choices():
    from fleet.cli import bench
    from fleet.traffic.planner import GUIDANCE

    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "routing", "--map", TINY, "--agents", "1", "--steps", "1"])
    assert args.guidance == GUIDANCE[0] == "shortest"
    for choice in GUIDANCE:
        parser.parse_args(["bench", "routing", "--map", TINY, "--agents", "1", "--steps", "1", "--guidance", choice])


def test_the_cli_help_states_the_planners_own_defaults():
    # The CLI does not import the planner (numba) to build its options, so the defaults
    # its help quotes are written out there: they must be the planner's.
    from fleet.cli import bench
    from fleet.traffic.guidance import CONTRAFLOW, CROWDING
    from fleet.traffic.window import SEARCHES, TIME_CAP_MS

    helps = {option: text for option, _, _, text in bench._VALUED_RULES}
    assert helps["window-searches"].endswith(f"(default {SEARCHES})")
    assert helps["window-ms"].endswith(f"(default {TIME_CAP_MS:g})")
    assert helps["contraflow"].endswith(f"(default {CONTRAFLOW})")
    assert helps["crowding"].endswith(f"default {CROWDING})")


def test_mapf_reports_solution_quality(tmp_path, capsys):
    (tmp_path / "small.map").write_text(MOVINGAI)
    (tmp_path / "small.scen").write_text(SCEN)
    code, report = _run(capsys, "bench", "mapf", "--map", str(tmp_path / "small.map"), "--scen",
                        str(tmp_path / "small.scen"), "--agents", "3", "--time-limit", "10")
    assert code == 0
    assert MAPF_FIELDS <= report.keys()
    assert report["solved"] and report["collisions"] == 0
    assert report["lower_bound"] == 21 and report["sum_of_costs"] >= 21


def test_bad_inputs_give_a_specific_error(tmp_path, capsys):
    (tmp_path / "small.map").write_text(MOVINGAI)
    (tmp_path / "small.scen").write_text(SCEN)
    (tmp_path / "walls.txt").write_text("0 0\n")
    (tmp_path / "junk.txt").write_text("3\n")
    cases = [
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--endpoints", str(tmp_path / "walls.txt")],
         "blocked or outside"),
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--starts", str(tmp_path / "junk.txt")],
         "junk.txt:1: expected two integers"),
        (["routing", "--map", str(tmp_path / "nope.toml"), "--agents", "2", "--steps", "5"], "nope.toml"),
        (["routing", "--map", TINY, "--agents", "0", "--steps", "5"], "at least 1"),
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--lag-after", "-1"],
         "lag_after must be a number of steps"),
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--window", "0"], "window must be at least 1"),
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--guidance", "flow", "--crowding", "-1"],
         "contraflow and crowding must be 0 or more"),
        (["routing", "--map", TINY, "--agents", "2", "--steps", "5", "--window", "3", "--window-searches", "-2"],
         "searches must be 0 or more"),
        (["mapf", "--map", str(tmp_path / "small.map"), "--scen", str(tmp_path / "small.scen"), "--agents", "9"],
         "9 agents asked for, the scenario has 3"),
    ]
    for argv, message in cases:
        code, report = _run(capsys, "bench", *argv)
        assert code == 2, argv
        assert message in report["error"], (argv, report)


def test_routing_floor_rules_change_the_floor_robots_are_planned_on(capsys):
    """One-way aisles and two-lane roads take moves away, so the ways between endpoints
    (and with them the throughput ceiling) grow longer; the runs stay collision-free."""
    kiva = str(Path(__file__).parent.parent / "maps" / "kiva.toml")
    reports = {}
    for rules in ((), ("--one-way-aisles",), ("--two-lane-roads",)):
        code, reports[rules] = _run(capsys, "bench", "routing", "--map", kiva, "--agents", "30", "--steps", "120",
                                    "--table-memory", "0.5", *rules)
        assert code == 0 and reports[rules]["table_memory_gb"] == 0.5
        assert reports[rules]["collisions"] == 0 and reports[rules]["tasks_finished"] > 0
        assert reports[rules]["blocked_robot_steps"] == 0
    two_way, one_way, two_lane = (reports[r]["throughput_ceiling"] for r in reports)
    assert reports[("--one-way-aisles",)]["one_way_aisles"] and reports[("--two-lane-roads",)]["two_lane_roads"]
    assert one_way < two_way and two_lane < one_way


def test_the_liveness_soak_reports_a_stuck_case_with_what_replays_it():
    """The soak is only worth running if it can fail: given one round, nobody arrives, and
    every case comes back with its arguments; given enough, the same cases pass."""
    soak = Path(__file__).parent.parent / "benchmarks" / "liveness.py"

    def run(*extra: str) -> dict:
        out = subprocess.run([sys.executable, str(soak), "--cases", "3", "--seed", "5", *extra],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    stuck = run("--rounds", "1")
    assert len(stuck["failures"]) == 3
    assert all("not everyone arrived" in f["error"] and {"seed", "robots", "floor"} <= set(f) for f in stuck["failures"])
    assert run()["failures"] == []
