"""Serial lines made in software: pseudo-terminal pairs and a relay that injects faults.

A bench or a test wires a master and a robot together through two pseudo-terminals and a
relay copying bytes between their controlling sides. Each end opens an ordinary tty path
with pyserial, exactly as it would open /dev/ttyUSB0, while the relay plays the cable:
perfect, or flipping bits and dropping bytes at chosen rates, reproducibly from a seed.
"""

from __future__ import annotations

import math
import os
import random
import select
import socket
import threading
import tty
from dataclasses import dataclass, field


@dataclass
class LineFaults:
    """Independent random bit errors and dropped bytes, at per-bit and per-byte rates."""

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    flipped: int = 0
    dropped: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _bits_to_flip: int = field(init=False, repr=False)
    _bytes_to_drop: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("bit_error_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        self._rng = random.Random(self.seed)
        self._bits_to_flip = self._gap(self.bit_error_rate)
        self._bytes_to_drop = self._gap(self.drop_rate)

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


class Relay:
    """Copies bytes both ways between two pseudo-terminals, through optional faults."""

    def __init__(self, a_to_b: LineFaults | None = None, b_to_a: LineFaults | None = None) -> None:
        self.a = PseudoTerminal()
        self.b = PseudoTerminal()
        self.a_to_b = a_to_b
        self.b_to_a = b_to_a
        self._faults = {self.a.master_fd: a_to_b, self.b.master_fd: b_to_a}
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
        while not self._stop.is_set():
            ready, _, _ = select.select(fds, [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue  # no slave open on that side yet
                faults = self._faults[fd]
                if faults is not None:
                    data = faults.apply(data)
                if data and not self._cut[fd].is_set():
                    os.write(self._peer[fd], data)

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
        to_client: LineFaults | None = None,
        from_client: LineFaults | None = None,
    ) -> None:
        self.pty = PseudoTerminal()
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self.to_client = to_client
        self.from_client = from_client
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
        while not self._stop.is_set():
            if self._hang_up.is_set():
                self._hang_up.clear()
                self._drop_client()
            sources: list = [self._listener, self.pty.master_fd]
            if self._client is not None:
                sources.append(self._client)
            ready, _, _ = select.select(sources, [], [], 0.05)
            for source in ready:
                if source is self._listener:
                    client, _ = self._listener.accept()
                    self._drop_client()
                    self._client = client
                elif source == self.pty.master_fd:
                    self._to_socket(os.read(self.pty.master_fd, 4096))
                else:
                    self._to_pty()

    def _to_socket(self, data: bytes) -> None:
        if self.to_client is not None:
            data = self.to_client.apply(data)
        if self._client is not None and data:
            try:
                self._client.sendall(data)
            except OSError:
                self._drop_client()

    def _to_pty(self) -> None:
        assert self._client is not None
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return
        if self.from_client is not None:
            data = self.from_client.apply(data)
        if data:
            os.write(self.pty.master_fd, data)

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._drop_client()
        self._listener.close()
        self.pty.close()
