"""Session recordings: every frame on a line, with its time and direction, as JSON lines.

A recording is what a bench engineer attaches to a bug report: one object per frame,
`{"t": seconds since the recording began, "dir": "tx" | "rx", "hex": "04 01 ..."}`, where
"tx" is master to robot and "rx" robot to master, and `hex` holds the frame's bytes on
the line including its 0x00 delimiter (a corrupted frame is recorded as it arrived). It
can be read back and decoded for a human (`describe`), or its master side replayed
against a robot with the original timing.

`Tap` records a live session without taking part in it: it sits between a master and the
robot's port as a pseudo-terminal, like a serial sniffer on the cable.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import select
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import orjson
import serial

from drivers.serial import frames
from drivers.serial import messages as wire
from drivers.serial.line import PseudoTerminal, write_or_drop

DIRECTIONS = ("tx", "rx")


@dataclass(frozen=True)
class Entry:
    t: float
    dir: str
    wire: bytes


class RecordingError(ValueError):
    pass


class Recorder:
    """Writes frames as they pass; bytes are cut into frames at each delimiter."""

    def __init__(self, out: IO[bytes], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._monotonic = monotonic
        self._start = monotonic()
        self._partial = {d: b"" for d in DIRECTIONS}
        self._lock = threading.Lock()
        self.frames = 0

    def __call__(self, direction: str, data: bytes) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        with self._lock:
            t = round(self._monotonic() - self._start, 6)
            pieces = (self._partial[direction] + data).split(frames.DELIMITER)
            self._partial[direction] = pieces.pop()
            for piece in pieces:
                entry = {"t": t, "dir": direction, "hex": (piece + frames.DELIMITER).hex(" ")}
                self._out.write(orjson.dumps(entry) + b"\n")
                self.frames += 1
            self._out.flush()


def read_recording(path: str | Path) -> list[Entry]:
    """The entries of a recording; RecordingError names the first bad line."""
    entries = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                entry = Entry(float(obj["t"]), obj["dir"], bytes.fromhex(obj["hex"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise RecordingError(f"{path}:{number}: not a recorded frame ({exc})") from None
            if entry.dir not in DIRECTIONS:
                raise RecordingError(f"{path}:{number}: direction {entry.dir!r} is not tx or rx")
            entries.append(entry)
    return entries


def describe(data: bytes) -> str:
    """One frame's bytes on the line, decoded for reading (or what is wrong with them)."""
    encoded = data[:-1] if data.endswith(frames.DELIMITER) else data
    if not encoded:
        return "(empty frame: ignored)"
    try:
        frame = frames.decode(encoded)
    except frames.FrameError as exc:
        return f"INVALID {exc}"
    head = f"seq={frame.seq}" + (f" version={frame.version}" if frame.version != frames.VERSION else "")
    try:
        message = wire.decode(frame.type, frame.payload)
    except wire.MessageError as exc:
        return f"type {frame.type:#04x} {head} MALFORMED {exc}"
    return f"{type(message).__name__} {head} {message}"


def fresh_nonces(entries: list[Entry]) -> list[Entry]:
    """The entries with every HELLO's nonce replaced by a new one (the same old nonce maps
    to the same new one), so that replaying them opens new sessions."""
    new: dict[int, int] = {}
    out = []
    for entry in entries:
        try:
            frame = frames.decode(entry.wire.rstrip(frames.DELIMITER))
            hello = wire.decode(frame.type, frame.payload)
        except (frames.FrameError, wire.MessageError):
            hello = None
        if isinstance(hello, wire.Hello):
            nonce = new.setdefault(hello.nonce, secrets.randbits(32))
            payload = wire.encode(dataclasses.replace(hello, nonce=nonce))
            entry = Entry(entry.t, entry.dir, frames.encode(dataclasses.replace(frame, payload=payload)))
        out.append(entry)
    return out


class Tap:
    """A recording sniffer: a master opens `path`, the robot is on `robot_url`."""

    def __init__(self, robot_url: str, recorder: Recorder, baudrate: int = 115200) -> None:
        self.robot = serial.serial_for_url(robot_url, baudrate=baudrate, timeout=0)
        self.pty = PseudoTerminal()
        self.path = self.pty.path
        self.recorder = recorder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        os.set_blocking(self.pty.master_fd, False)
        while not self._stop.is_set():
            # pyserial gives no selectable handle for every URL (loop://, rfc2217://): poll it.
            ready, _, _ = select.select([self.pty.master_fd], [], [], 0.005)
            if ready:
                try:
                    data = os.read(self.pty.master_fd, 4096)
                except OSError:
                    data = b""
                if data:
                    self.recorder("tx", data)
                    self.robot.write(data)
            data = self.robot.read(4096)
            if data:
                self.recorder("rx", data)
                write_or_drop(self.pty.master_fd, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.robot.close()
        self.pty.close()
