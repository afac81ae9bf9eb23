"""`fleet hil record` and `fleet hil replay`: a session between a master and an emulated
robot is recorded by a tap on the line, decoded for reading, and replayed against a robot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers import events
from drivers.commands import InstantCommand, InstantKind
from drivers.serial import frames
from drivers.serial import messages as wire
from drivers.serial.link import SerialLink, SerialRobot
from drivers.serial.port import PortSettings
from drivers.serial.recording import Recorder, Tap, describe, read_recording
from fleet.cli import main
from fleet.clock import SimulatedClock
from test_hil_check import Floor
from test_serial_emulator import SETTINGS

REPO = Path(__file__).resolve().parent.parent


def _session(master_url: str) -> list[events.RobotEvent]:
    """A master that connects, asks for a pause and a resume, and leaves."""
    link = SerialLink([SerialRobot("r1", PortSettings(master_url))], SimulatedClock(), SETTINGS)
    got: list[events.RobotEvent] = []
    try:
        deadline = time.monotonic() + 5
        while not link.online("r1") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.online("r1")
        link.instant("r1", InstantCommand(InstantKind.PAUSE, command_id="p"))
        link.instant("r1", InstantCommand(InstantKind.RESUME, command_id="r"))
        time.sleep(0.5)
        got = link.drain()
    finally:
        link.close()
    return got


def test_the_tap_records_both_directions_and_every_frame_decodes(tmp_path: Path) -> None:
    floor = Floor("pty")
    out = tmp_path / "session.jsonl"
    try:
        with open(out, "wb") as f:
            recorder = Recorder(f)
            tap = Tap(floor.url, recorder)
            try:
                got = _session(tap.path)
            finally:
                tap.close()
    finally:
        floor.close()
    assert any(isinstance(e, events.StatusReport) for e in got), "the session went through the tap"
    entries = read_recording(out)
    assert len(entries) == recorder.frames > 10
    assert [e.t for e in entries] == sorted(e.t for e in entries)
    kinds = {(e.dir, describe(e.wire).split(" ")[0]) for e in entries}
    assert {("tx", "Hello"), ("rx", "Identity"), ("tx", "Instant"), ("rx", "Ack"), ("rx", "Status"),
            ("tx", "Heartbeat")} <= kinds
    instants = [frames.decode(e.wire[:-1]) for e in entries if describe(e.wire).startswith("Instant")]
    assert [wire.decode(f.type, f.payload).kind for f in instants] == [InstantKind.PAUSE, InstantKind.RESUME]


def test_fleet_hil_record_then_replay_decoded_and_against_a_robot(tmp_path: Path, capsys) -> None:
    floor = Floor("pty")
    out = tmp_path / "bug.jsonl"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet", "hil", "record", "--port", floor.url, "--out", str(out), "--duration", "3"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        header = json.loads(proc.stdout.readline())
        _session(header["master_port"])
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert json.loads(rest.strip().splitlines()[-1])["frames"] == len(read_recording(out))

        assert main(["hil", "replay", str(out)]) == 0
        decoded = capsys.readouterr().out.splitlines()
        assert len(decoded) == len(read_recording(out))
        assert any("master > robot  Hello seq=0" in line for line in decoded)
        assert any("robot > master  Identity seq=0" in line and "robot_id='r1'" in line for line in decoded)

        # Replayed against the robot, the recorded master side opens a session again and
        # the robot answers the same kinds of frames it answered then.
        again = tmp_path / "replayed.jsonl"
        assert main(["hil", "replay", str(out), "--port", floor.url, "--out", str(again)]) == 0
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert summary["replayed"]["Identity"] >= 1 and summary["replayed"]["Status"] >= 5
        assert summary["replayed"]["Ack"] == summary["recorded"]["Ack"]
        assert {e.dir for e in read_recording(again)} == {"tx", "rx"}
    finally:
        floor.close()


def test_describe_names_what_is_wrong_with_a_frame() -> None:
    good = frames.encode(frames.Frame(wire.Heartbeat.TYPE, 0))
    assert describe(good) == "Heartbeat seq=0 Heartbeat()"
    bad = bytearray(good)
    bad[-2] ^= 0x10
    assert describe(bytes(bad)).startswith("INVALID crc:")
    assert describe(b"\x00") == "(empty frame: ignored)"
    assert "MALFORMED" in describe(frames.encode(frames.Frame(wire.Instant.TYPE, 1, b"\x01")))


@pytest.mark.parametrize("content, problem", [
    ('{"t": 0.1, "dir": "tx"}\n', "bad.jsonl:1: not a recorded frame"),
    ('{"t": 0.1, "dir": "tx", "hex": "01 00"}\n{"t": 1, "dir": "up", "hex": "00"}\n', "bad.jsonl:2: direction 'up'"),
    ("not json\n", "bad.jsonl:1: not a recorded frame"),
])
def test_a_bad_recording_is_refused_with_its_line(tmp_path: Path, capsys, content: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["hil", "replay", str(path)]) == 2
    assert problem in capsys.readouterr().err
