"""`fleet hil`: the hardware-in-the-loop bench for robots on the serial protocol.

check   run the conformance sequence against one robot (real or emulated), print a
        pass/fail table, write a JSON report; exit 0 only if nothing failed
record  sit between a master and a robot's port and record every frame (JSON lines)
replay  decode a recording for reading, or play its master side against a robot

docs/hil-bench.md describes the bench and each check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hil", help="hardware-in-the-loop bench: check, record and replay serial robots")
    commands = parser.add_subparsers(dest="hil_command", metavar="ACTION", required=True)

    check = commands.add_parser("check", help="run the protocol conformance sequence against one robot")
    check.add_argument("--port", required=True, help="pyserial URL or device: /dev/ttyUSB0, socket://host:port, ...")
    check.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    check.add_argument("--robot-id", help="the id the robot must answer with (default: accept its own)")
    check.add_argument("--allow-motion", action="store_true",
                       help="let the robot move: a job that turns in place, lifts and lowers")
    check.add_argument("--shelf", help="with --allow-motion: the shelf the robot stands under")
    check.add_argument("--cell", help="X,Y the robot stands on, if it does not know (default: from its STATUS)")
    check.add_argument("--heading", help="with --cell: the heading it faces (east, north, west, south)")
    check.add_argument("--report", help="write the JSON report here (default hil-report.json)", default="hil-report.json")
    check.add_argument("--record", help="also record the session's frames to this file (JSON lines)")
    check.set_defaults(run=_check)

    record = commands.add_parser("record", help="record a session between a master and a robot")
    record.add_argument("--port", required=True, help="the robot's port (pyserial URL or device)")
    record.add_argument("--baud", type=int, default=115200)
    record.add_argument("--out", required=True, help="recording file (JSON lines)")
    record.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")
    record.set_defaults(run=_record)

    replay = commands.add_parser("replay", help="decode a recording, or replay its master side against a robot")
    replay.add_argument("recording", help="a file written by `fleet hil record` or `fleet hil check --record`")
    replay.add_argument("--port", help="replay the master's frames against this robot, with the recorded timing")
    replay.add_argument("--baud", type=int, default=115200)
    replay.add_argument("--out", help="with --port: record the replayed session here")
    replay.set_defaults(run=_replay)


def _pose(args: argparse.Namespace):
    from maps.model import Cell, Heading

    if args.cell is None:
        if args.heading is not None:
            raise ValueError("--heading needs --cell")
        return None
    try:
        x, y = (int(v) for v in args.cell.split(","))
    except ValueError:
        raise ValueError(f"--cell takes X,Y (two integers), got {args.cell!r}") from None
    if args.heading is None:
        raise ValueError("--cell needs --heading")
    return Cell(x, y), Heading.parse(args.heading)


def _check(args: argparse.Namespace) -> int:
    from drivers.serial.conformance import Bench
    from drivers.serial.recording import Recorder

    try:
        pose = _pose(args)
    except ValueError as exc:
        print(f"fleet hil check: {exc}", file=sys.stderr)
        return 2
    record_file = open(args.record, "wb") if args.record else None
    try:
        bench = Bench(args.port, args.robot_id, args.allow_motion, args.shelf, pose, args.baud,
                      Recorder(record_file) if record_file else None)
        report = bench.run()
    finally:
        if record_file:
            record_file.close()
    print(report.table())
    try:
        with open(args.report, "w") as f:
            json.dump(report.as_dict(), f, indent=2)
    except OSError as exc:
        print(f"fleet hil check: cannot write report: {exc}", file=sys.stderr)
        return 2
    return 0 if report.passed else 1


def _record(args: argparse.Namespace) -> int:
    import serial

    from drivers.serial.recording import Recorder, Tap

    try:
        out = open(args.out, "wb")
    except OSError as exc:
        print(f"fleet hil record: {exc}", file=sys.stderr)
        return 2
    recorder = Recorder(out)
    try:
        tap = Tap(args.port, recorder, args.baud)
    except (serial.SerialException, OSError, ValueError) as exc:
        out.close()
        print(f"fleet hil record: cannot open {args.port}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"master_port": tap.path, "robot_port": args.port, "out": args.out}), flush=True)
    try:
        time.sleep(args.duration) if args.duration is not None else _forever()
    except KeyboardInterrupt:
        pass
    finally:
        tap.close()
        out.close()
    print(json.dumps({"frames": recorder.frames}), flush=True)
    return 0


def _forever() -> None:
    while True:
        time.sleep(3600)


def _replay(args: argparse.Namespace) -> int:
    from drivers.serial.recording import RecordingError, describe, read_recording

    try:
        entries = read_recording(args.recording)
    except (RecordingError, OSError) as exc:
        print(f"fleet hil replay: {exc}", file=sys.stderr)
        return 2
    if args.port is None:
        for entry in entries:
            arrow = "master > robot" if entry.dir == "tx" else "robot > master"
            print(f"{entry.t:10.3f}  {arrow}  {describe(entry.wire)}")
        return 0
    return _replay_against(args, entries)


def _replay_against(args: argparse.Namespace, entries) -> int:
    """Write the recorded master frames with their timing; show what the robot answers.

    Each recorded session's HELLO gets a fresh nonce, so the robot opens a new session for
    the replay (with the recorded nonce, a robot still in that session would only repeat
    IDENTITY and drop the replayed frames as old sequence numbers).
    """
    import serial

    from drivers.serial.recording import Recorder, describe, fresh_nonces

    try:
        port = serial.serial_for_url(args.port, baudrate=args.baud, timeout=0.01)
    except (serial.SerialException, OSError, ValueError) as exc:
        print(f"fleet hil replay: cannot open {args.port}: {exc}", file=sys.stderr)
        return 2
    port.reset_input_buffer()
    out = open(args.out, "wb") if args.out else None
    recorder = Recorder(out) if out else None
    answers: list[tuple[float, bytes]] = []
    pending = b""
    start = time.monotonic()
    last = entries[-1].t + 1.0 if entries else 0.0
    queue = fresh_nonces([e for e in entries if e.dir == "tx"])
    try:
        while time.monotonic() - start < last:
            now = time.monotonic() - start
            while queue and queue[0].t <= now:
                data = queue.pop(0).wire
                port.write(data)
                if recorder:
                    recorder("tx", data)
            data = port.read(max(1, port.in_waiting))
            if data:
                if recorder:
                    recorder("rx", data)
                pieces = (pending + data).split(b"\x00")
                pending = pieces.pop()
                answers += [(now, p + b"\x00") for p in pieces]
    finally:
        port.close()
        if out:
            out.close()
    for t, data in answers:
        print(f"{t:10.3f}  robot > master  {describe(data)}")
    recorded = Counter(describe(e.wire).split(" ")[0] for e in entries if e.dir == "rx")
    replayed = Counter(describe(d).split(" ")[0] for _, d in answers)
    print(json.dumps({"recorded": dict(sorted(recorded.items())), "replayed": dict(sorted(replayed.items()))}))
    return 0
