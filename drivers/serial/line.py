"""Serial lines made in software: pseudo-terminal pairs and a relay that injects faults.

A bench or a test wires a master and a robot together through two pseudo-terminals and a
relay copying bytes between their controlling sides. Each end opens an ordinary tty path
with pyserial, exactly as it would open /dev/ttyUSB0, while the relay plays the cable:
perfect, or flipping bits, dropping bytes and stalling at chosen rates, reproducibly from
a seed. A filter on one direction can also play a broken UART driver (WrongCrc), so a
bench can be shown what a non-conforming robot looks like.
"""

from __future__ import annotations

import math
import os
import random
import select
import socket
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from drivers.serial import frames


class LineFilter(Protocol):
    """What one direction of a line does to the bytes it carries."""

    def apply(self, data: bytes) -> bytes: ...

    def stall(self, data: bytes) -> float:
        """Seconds to hold `data` (and everything after it) back on the line."""
        ...


@dataclass
class LineFaults:
    """Independent random bit errors and dropped bytes, at per-bit and per-byte rates."""

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    #: Per byte: chance that the line stalls for `delay` seconds before this byte.
    delay_rate: float = 0.0
    delay: float = 0.0
    flipped: int = 0
    dropped: int = 0
    delayed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _bits_to_flip: int = field(init=False, repr=False)
    _bytes_to_drop: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("bit_error_rate", "drop_rate", "delay_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")
        self._rng = random.Random(self.seed)
        self._bits_to_flip = self._gap(self.bit_error_rate)
        self._bytes_to_drop = self._gap(self.drop_rate)
        self._bytes_to_stall = self._gap(self.delay_rate)

    @property
    def active(self) -> bool:
        return bool(self.bit_error_rate or self.drop_rate or (self.delay_rate and self.delay))

    def _gap(self, rate: float) -> int:
        """Units until the next fault: geometric, so faults are independent per unit."""
        if rate == 0.0:
            return -1
        return int(math.log(1.0 - self._rng.random()) / math.log(1.0 - rate))

    def apply(self, data: bytes) -> bytes:
        out = bytearray(data)
        if self._bits_to_flip >= 0:
            bit = self._bits_to_flip
            while bit < 8 * len(out):
                out[bit // 8] ^= 1 << (bit % 8)
                self.flipped += 1
                bit += 1 + self._gap(self.bit_error_rate)
            self._bits_to_flip = bit - 8 * len(out)
        if self._bytes_to_drop >= 0:
            kept = bytearray()
            pos = 0
            while pos + self._bytes_to_drop < len(out):
                drop_at = pos + self._bytes_to_drop
                kept += out[pos:drop_at]
                self.dropped += 1
                pos = drop_at + 1
                self._bytes_to_drop = self._gap(self.drop_rate)
            kept += out[pos:]
            self._bytes_to_drop -= len(out) - pos
            out = kept
        return bytes(out)

    def stall(self, data: bytes) -> float:
        if self._bytes_to_stall < 0 or not self.delay:
            return 0.0
        stalls = 0
        while self._bytes_to_stall < len(data):
            stalls += 1
            self._bytes_to_stall += 1 + self._gap(self.delay_rate)
        self._bytes_to_stall -= len(data)
        self.delayed += stalls
        return stalls * self.delay


class WrongCrc:
    """A robot whose CRC routine is wrong: every frame it sends fails the master's check.

    It re-frames the stream it is given, so it only makes sense on the robot's own output;
    a bench points `fleet hil check` at it to see the failure it must report.
    """

    def __init__(self) -> None:
        self._pending = b""

    def apply(self, data: bytes) -> bytes:
        pieces = (self._pending + data).split(frames.DELIMITER)
        self._pending = pieces.pop()
        out = bytearray()
        for encoded in pieces:
            if not encoded:
                out += frames.DELIMITER
                continue
            try:
                frame = frames.decode(encoded)
            except frames.FrameError:
                out += encoded + frames.DELIMITER
                continue
            body = bytearray(frames.body(frame))
            body[-1] ^= 0x01
            out += frames.cobs.encode(bytes(body)) + frames.DELIMITER
        return bytes(out)

    def stall(self, data: bytes) -> float:
        return 0.0


class Chain:
    """Several filters on one direction, applied in order (e.g. a bad CRC, then noise)."""

    def __init__(self, *filters: LineFilter) -> None:
        self.filters = filters

    def apply(self, data: bytes) -> bytes:
        for line_filter in self.filters:
            data = line_filter.apply(data)
        return data

    def stall(self, data: bytes) -> float:
        return sum(line_filter.stall(data) for line_filter in self.filters)


class _Direction:
    """One direction of a line: bytes pass a filter, then wait their turn to be written.

    A stall holds back everything behind it too, as on a real wire, so order is kept.
    """

    def __init__(self, line_filter: LineFilter | None) -> None:
        self.filter = line_filter
        self._queue: deque[tuple[float, bytes]] = deque()

    def push(self, data: bytes) -> None:
        if self.filter is not None:
            hold = self.filter.stall(data)
            data = self.filter.apply(data)
        else:
            hold = 0.0
        if not data:
            return
        now = time.monotonic()
        due = max(now + hold, self._queue[-1][0] if self._queue else now)
        self._queue.append((due, data))

    def ready(self) -> bytes:
        now = time.monotonic()
        out = bytearray()
        while self._queue and self._queue[0][0] <= now:
            out += self._queue.popleft()[1]
        return bytes(out)

    def wait(self, longest: float) -> float:
        if not self._queue:
            return longest
        return min(longest, max(0.0, self._queue[0][0] - time.monotonic()))

    def clear(self) -> None:
        self._queue.clear()


class PseudoTerminal:
    """A pty whose slave side is a path pyserial can open; the relay owns the master side."""

    def __init__(self) -> None:
        self.master_fd, self._slave_fd = os.openpty()
        # Raw from the start: bytes arriving before pyserial opens the path must not echo.
        tty.setraw(self._slave_fd)
        self.path = os.ttyname(self._slave_fd)

    def close(self) -> None:
        for fd in (self.master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def write_or_drop(fd: int, data: bytes) -> None:
    """Write to a pty's controlling side without ever blocking the relay.

    With nobody at the other end a pty's buffer fills; a blocked write would then stall
    both directions. What does not fit is lost, as on a cable with nothing plugged in.
    """
    try:
        os.write(fd, data)
    except (BlockingIOError, OSError):
        pass


class Relay:
    """Copies bytes both ways between two pseudo-terminals, through optional faults."""

    def __init__(self, a_to_b: LineFilter | None = None, b_to_a: LineFilter | None = None) -> None:
        self.a = PseudoTerminal()
        self.b = PseudoTerminal()
        self.a_to_b = a_to_b
        self.b_to_a = b_to_a
        self._directions = {self.a.master_fd: _Direction(a_to_b), self.b.master_fd: _Direction(b_to_a)}
        self._peer = {self.a.master_fd: self.b.master_fd, self.b.master_fd: self.a.master_fd}
        #: While set, what travels that way is thrown away: one wire of the cable broken.
        self.cut_a_to_b = threading.Event()
        self.cut_b_to_a = threading.Event()
        self._cut = {self.a.master_fd: self.cut_a_to_b, self.b.master_fd: self.cut_b_to_a}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fds = list(self._peer)
        for fd in fds:
            os.set_blocking(fd, False)
        while not self._stop.is_set():
            timeout = min(direction.wait(0.05) for direction in self._directions.values())
            ready, _, _ = select.select(fds, [], [], timeout)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue  # no slave open on that side yet
                if data and not self._cut[fd].is_set():
                    self._directions[fd].push(data)
            for fd, direction in self._directions.items():
                out = direction.ready()
                if out:
                    write_or_drop(self._peer[fd], out)

    def cut(self, broken: bool = True) -> None:
        """Pull the cable out (or plug it back in): both directions at once."""
        for event in (self.cut_a_to_b, self.cut_b_to_a):
            event.set() if broken else event.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.a.close()
        self.b.close()


class TerminalServer:
    """A TCP port in front of a pseudo-terminal, as a serial terminal server puts one in
    front of a UART: a master connects with socket://host:port, the robot side opens
    `pty.path`. One client at a time; bytes from the robot with no client connected are
    lost, as on an unplugged cable.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        to_client: LineFilter | None = None,
        from_client: LineFilter | None = None,
    ) -> None:
        self.pty = PseudoTerminal()
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self.to_client = to_client
        self.from_client = from_client
        self._out = _Direction(to_client)
        self._in = _Direction(from_client)
        self._client: socket.socket | None = None
        self._hang_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"terminal server {self.port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def hang_up(self) -> None:
        """Close the current client's connection, as a terminal server restart would."""
        self._hang_up.set()

    def _run(self) -> None:
        os.set_blocking(self.pty.master_fd, False)
        while not self._stop.is_set():
            if self._hang_up.is_set():
                self._hang_up.clear()
                self._drop_client()
            sources: list = [self._listener, self.pty.master_fd]
            if self._client is not None:
                sources.append(self._client)
            ready, _, _ = select.select(sources, [], [], self._in.wait(self._out.wait(0.05)))
            for source in ready:
                if source is self._listener:
                    client, _ = self._listener.accept()
                    self._drop_client()
                    self._client = client
                elif source == self.pty.master_fd:
                    try:
                        self._out.push(os.read(self.pty.master_fd, 4096))
                    except OSError:
                        pass
                else:
                    self._from_socket()
            self._to_socket(self._out.ready())
            data = self._in.ready()
            if data:
                write_or_drop(self.pty.master_fd, data)

    def _to_socket(self, data: bytes) -> None:
        if self._client is not None and data:
            try:
                self._client.sendall(data)
            except OSError:
                self._drop_client()

    def _from_socket(self) -> None:
        assert self._client is not None
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return
        self._in.push(data)

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._in.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._drop_client()
        self._listener.close()
        self.pty.close()
