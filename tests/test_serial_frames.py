"""Framing: CRC-16/CCITT-FALSE, COBS, and the stream decoder's resilience to a bad line."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial import frames
from drivers.serial.frames import Frame, FrameError, StreamDecoder


def test_crc_is_ccitt_false_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert frames.crc16(b"123456789") == 0x29B1


def test_encoded_frame_has_one_delimiter_at_the_end() -> None:
    frame = Frame(0x13, 0x0100, bytes(range(0, 256)) * 1 + b"\x00" * 200)
    wire = frames.encode(frame)
    assert wire.endswith(b"\x00")
    assert b"\x00" not in wire[:-1]
    assert len(wire) - 1 <= frames.MAX_ENCODED
    assert frames.decode(wire[:-1]) == frame


@pytest.mark.parametrize("version", [1, 2, 255])
def test_version_is_carried(version: int) -> None:
    frame = Frame(0x05, 0, b"", version)
    assert frames.decode(frames.encode(frame)[:-1]).version == version


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (dict(type=256, seq=0), "type"),
        (dict(type=1, seq=0x10000), "sequence"),
        (dict(type=1, seq=0, payload=b"x" * (frames.MAX_PAYLOAD + 1)), "payload"),
    ],
)
def test_frame_refuses_what_does_not_fit(frame: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Frame(**frame)


def test_every_single_bit_flip_is_caught() -> None:
    wire = frames.encode(Frame(0x21, 7, b"\x03\x00\x03\x00\x00\x02J1\x01\x00"))[:-1]
    for bit in range(8 * len(wire)):
        damaged = bytearray(wire)
        damaged[bit // 8] ^= 1 << (bit % 8)
        if 0 in damaged:
            continue  # the flip made a delimiter: the stream decoder's case, below
        with pytest.raises(FrameError):
            frames.decode(bytes(damaged))


@pytest.mark.parametrize(
    ("encoded", "kind"),
    [
        (b"\x05\x01", "cobs"),  # block says 4 more bytes, there is 1
        (b"\x03\x01\x02", "short"),  # 2 bytes: not even a header
        (frames.encode(Frame(1, 0, b"abc"))[:-1][:-1] + b"\x01", "crc"),
    ],
)
def test_decode_names_the_problem(encoded: bytes, kind: str) -> None:
    with pytest.raises(FrameError) as caught:
        frames.decode(encoded)
    assert caught.value.kind == kind


def test_stream_decoder_reassembles_any_chunking() -> None:
    sent = [Frame(0x20, 0, bytes([i]) * i) for i in range(40)]
    stream = b"".join(frames.encode(f) for f in sent)
    rng = random.Random(3)
    decoder = StreamDecoder()
    got: list[Frame] = []
    pos = 0
    while pos < len(stream):
        size = rng.randint(1, 30)
        got += decoder.feed(stream[pos : pos + size])
        pos += size
    assert got == sent
    assert decoder.counters.frames == 40 and decoder.counters.rejected == 0


def test_stream_decoder_skips_garbage_truncation_and_duplicates() -> None:
    a, b, c = (Frame(0x24, s, b"\x02J" + bytes([s])) for s in (1, 2, 3))
    wire_a, wire_b, wire_c = (frames.encode(f) for f in (a, b, c))
    stream = (
        b"\x17\x99garbage\x00"  # noise before anything
        + wire_a
        + wire_b[:5]
        + b"\x00"  # b cut short: a truncated frame
        + wire_c
        + wire_c  # c twice: framing delivers both, the channel drops the repeat
        + b"\x00\x00"  # empty frames are ignored, not counted
        + b"\xff" * (frames.MAX_ENCODED + 10)
        + b"\x00"  # a runaway frame
        + wire_b
    )
    decoder = StreamDecoder()
    assert decoder.feed(stream) == [a, c, c, b]
    counted = decoder.counters
    assert counted.overrun == 1
    assert counted.cobs + counted.short + counted.crc == 2  # the garbage and the truncated b
    assert counted.frames == 4


def test_stream_decoder_recovers_after_an_overrun_split_across_feeds() -> None:
    decoder = StreamDecoder()
    decoder.feed(b"\x01" * 400)
    assert decoder.feed(b"\x01" * 400) == []
    frame = Frame(0x05, 0)
    assert decoder.feed(b"\x00" + frames.encode(frame)) == [frame]
    assert decoder.counters.overrun == 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_fuzz_random_bytes_never_crash_the_decoder(chunks: list[bytes]) -> None:
    decoder = StreamDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            # Whatever comes out passed the CRC and re-encodes to a decodable frame.
            assert frames.decode(frames.encode(frame)[:-1]) == frame
    total = sum(len(c) for c in chunks)
    assert decoder.counters.frames + decoder.counters.rejected <= total + 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=60)),
        min_size=1,
        max_size=6,
    ),
    st.binary(max_size=80),
)
def test_fuzz_valid_frames_survive_surrounding_garbage(specs: list, garbage: bytes) -> None:
    sent = [Frame(t, s, p) for t, s, p in specs]
    stream = garbage + b"\x00" + b"".join(frames.encode(f) for f in sent) + garbage
    got = StreamDecoder().feed(stream)
    # Garbage could, with odds of 1 in 65536, itself pass the CRC: it would come first.
    assert got[len(got) - len(sent) :] == sent
