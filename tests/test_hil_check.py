"""`fleet hil check` against the emulator's serial front end, over real pseudo-terminals and
TCP: a conforming robot passes every check, a deliberately broken one fails with a table
that names what is wrong."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterator

import pytest

from drivers.serial.conformance import Bench
from drivers.serial.recording import read_recording
from firmware_emulator.serial_front import Quirks, SerialFloor, SerialLines
from firmware_emulator.world import World
from fleet.cli import main
from fleet.clock import WallClock
from maps import CellKind, load_map
from maps.model import Heading

TINY = Path(__file__).parent / "data" / "tiny.toml"


class Floor:
    """One emulated robot standing under a shelf, on its own line, stepped in wall time."""

    def __init__(self, spec: str, quirks: Quirks = Quirks()) -> None:
        wmap = load_map(TINY)
        self.world = World(wmap, WallClock(), seed=1)
        self.cell = wmap.cells_of(CellKind.STORAGE)[0]
        self.world.add_robot("r1", self.cell, Heading.EAST)
        self.shelf = self.world.stored_shelf_at(self.cell)
        self.lines = SerialLines(spec, ["r1"], quirks=quirks)
        self.url = self.lines.master_urls["r1"]
        self.floor = SerialFloor(self.world, self.lines.robot_ports, quirks)
        self.floor.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.floor.run, kwargs={"stop": self._stop}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.floor.close()
        self.lines.close()


@pytest.fixture
def pty_floor() -> Iterator[Floor]:
    floor = Floor("pty")
    yield floor
    floor.close()


def statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_emulator_on_a_pty_passes_every_check_with_motion(pty_floor: Floor, tmp_path: Path, capsys) -> None:
    report_file = tmp_path / "report.json"
    record_file = tmp_path / "session.jsonl"
    code = main(["hil", "check", "--port", pty_floor.url, "--robot-id", "r1", "--allow-motion",
                 "--shelf", pty_floor.shelf, "--report", str(report_file), "--record", str(record_file)])
    table = capsys.readouterr().out
    assert code == 0, table
    report = json.loads(report_file.read_text())
    assert report["passed"] is True
    assert [c["status"] for c in report["checks"]] == ["pass"] * 12, table
    assert report["identity"]["robot_id"] == "r1"
    assert "PASS: 12 of 12" in table
    # The robot really moved: it turned, lifted its shelf and set it down again, in place.
    assert pty_floor.world.stored_shelf_at(pty_floor.cell) == pty_floor.shelf
    assert pty_floor.world.collisions == []
    # The recording holds both directions, starting with the master's HELLO.
    entries = read_recording(record_file)
    assert {e.dir for e in entries} == {"tx", "rx"}
    assert entries[0].dir == "tx" and entries[0].wire[2] == 0x01  # COBS code, version, type HELLO


def test_emulator_over_tcp_passes_and_motion_is_skipped_unless_allowed() -> None:
    floor = Floor("tcp://127.0.0.1:0")
    try:
        assert floor.url.startswith("socket://127.0.0.1:")
        report = Bench(floor.url, "r1").run()
    finally:
        floor.close()
    assert report.passed, report.table()
    assert statuses(report)["job: turn, lift, lower"] == "skip"
    assert list(statuses(report).values()).count("pass") == 11


def test_a_robot_without_watchdog_fails_the_watchdog_check(capsys, tmp_path: Path) -> None:
    floor = Floor("pty", Quirks(no_watchdog=True))
    try:
        code = main(["hil", "check", "--port", floor.url, "--report", str(tmp_path / "r.json")])
    finally:
        floor.close()
    table = capsys.readouterr().out
    assert code == 1
    assert "watchdog stop                       FAIL    still not paused with error 'watchdog'" in table
    assert "FAIL: 11 of 12" in table
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["watchdog stop"]


def test_a_robot_with_a_wrong_crc_fails_the_handshake_and_everything_after() -> None:
    floor = Floor("pty", Quirks(wrong_crc=True))
    try:
        report = Bench(floor.url).run()
    finally:
        floor.close()
    assert not report.passed
    handshake = report.checks[0]
    assert handshake.status == "fail" and "'crc'" in handshake.detail, handshake.detail
    assert all(c.detail.startswith("not run: no session") for c in report.checks[1:])
    assert report.line["crc"] > 0 and report.line["frames"] == 0


def test_a_robot_that_answers_with_another_id_fails_the_handshake(pty_floor: Floor) -> None:
    report = Bench(pty_floor.url, robot_id="r9").run()
    assert report.checks[0].status == "fail"
    assert "robot id 'r1', expected 'r9'" in report.checks[0].detail


def test_bad_arguments_and_absent_ports_are_reported(capsys, tmp_path: Path) -> None:
    assert main(["hil", "check", "--port", "/dev/does-not-exist", "--report", str(tmp_path / "r.json")]) == 1
    assert "open port" in capsys.readouterr().out
    assert main(["hil", "check", "--port", "loop://", "--cell", "1", "--heading", "east"]) == 2
    assert "--cell takes X,Y" in capsys.readouterr().err
