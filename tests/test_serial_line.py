"""Lines made in software: stalls keep byte order, WrongCrc breaks exactly the CRC, and a
line with nobody on the far end never blocks the relay."""

from __future__ import annotations

import os
import select
import time

import pytest

from drivers.serial import frames
from drivers.serial.frames import Frame, StreamDecoder
from drivers.serial.line import Chain, LineFaults, Relay, WrongCrc


def _read(fd: int, count: int, timeout: float = 3.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            out += os.read(fd, 4096)
    return out


def test_stalls_are_seeded_counted_and_sized() -> None:
    data = bytes(10_000)
    a = LineFaults(delay_rate=1e-3, delay=0.01, seed=3)
    b = LineFaults(delay_rate=1e-3, delay=0.01, seed=3)
    assert a.stall(data) == b.stall(data) == pytest.approx(0.01 * a.delayed)
    assert 2 <= a.delayed <= 30  # about 10 expected
    assert LineFaults().stall(data) == 0.0 and not LineFaults().active
    with pytest.raises(ValueError, match="delay must be >= 0"):
        LineFaults(delay=-1)


def test_a_stalled_line_delivers_late_but_in_order() -> None:
    relay = Relay(a_to_b=LineFaults(delay_rate=0.02, delay=0.05, seed=1))
    try:
        slave = os.open(relay.a.path, os.O_RDWR | os.O_NOCTTY)
        far = os.open(relay.b.path, os.O_RDWR | os.O_NOCTTY)
        try:
            sent = bytes(range(256)) * 4
            started = time.monotonic()
            for k in range(0, len(sent), 64):
                os.write(slave, sent[k:k + 64])
            got = _read(far, len(sent))
            assert got == sent
            assert relay.a_to_b.delayed > 0
            assert time.monotonic() - started >= 0.05
        finally:
            os.close(slave)
            os.close(far)
    finally:
        relay.close()


def test_wrong_crc_breaks_every_frame_and_nothing_else() -> None:
    sent = [Frame(0x20, 0, bytes([k, 0, k])) for k in range(5)]
    stream = b"".join(frames.encode(f) for f in sent)
    broken = WrongCrc()
    out = broken.apply(stream[:7]) + broken.apply(stream[7:])  # split mid-frame
    decoder = StreamDecoder()
    assert decoder.feed(out) == []
    assert decoder.counters.crc == 5 and decoder.counters.rejected == 5
    # The bodies are intact: only the CRC's low bit was flipped.
    for encoded, frame in zip(out.split(b"\x00")[:-1], sent):
        body = bytearray(frames.cobs.decode(encoded))
        body[-1] ^= 0x01
        assert frames.parse_body(bytes(body)) == frame


def test_a_chain_applies_its_filters_in_order() -> None:
    noise = LineFaults(drop_rate=0.5, seed=2, delay_rate=0.5, delay=0.01)
    chain = Chain(WrongCrc(), noise)
    data = frames.encode(Frame(0x05, 0)) * 20
    out = chain.apply(data)
    assert len(out) < len(data) and noise.dropped > 0
    assert chain.stall(data) > 0


def test_the_relay_never_blocks_when_nobody_reads_the_far_end() -> None:
    relay = Relay()
    try:
        near = os.open(relay.a.path, os.O_RDWR | os.O_NOCTTY)
        try:
            for _ in range(200):  # far more than a pty buffer holds
                os.write(near, bytes(1000))
            # The other direction still works: the relay thread is not stuck on a write.
            far = os.open(relay.b.path, os.O_RDWR | os.O_NOCTTY)
            try:
                os.write(far, b"ping\x00")
                assert _read(near, 5).endswith(b"ping\x00")
            finally:
                os.close(far)
        finally:
            os.close(near)
    finally:
        relay.close()
