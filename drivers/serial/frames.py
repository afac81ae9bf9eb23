"""Frames on the serial line: a header, a payload and a CRC, COBS-encoded, 0x00-delimited.

COBS guarantees the encoded frame contains no 0x00 byte, so a receiver that lost sync
(noise, a dropped byte, a robot that rebooted mid-frame) is back in step at the very next
0x00: the delimiter is the only resynchronisation rule the firmware needs. The CRC then
catches what noise did to the bytes in between. docs/serial-protocol.md is the normative
description; this module is its reference implementation.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field

from cobs import cobs

#: Protocol version carried in every frame header.
VERSION = 1
DELIMITER = b"\x00"
#: version u8, type u8, seq u16 (little-endian).
HEADER = struct.Struct("<BBH")
CRC = struct.Struct("<H")
#: Largest payload a conforming peer must accept; a frame body is header + payload + CRC.
MAX_PAYLOAD = 500
MAX_BODY = HEADER.size + MAX_PAYLOAD + CRC.size
#: COBS adds at most one byte per 254 plus one.
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 1
#: CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
CRC_INIT = 0xFFFF


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE; binascii's crc_hqx is exactly this polynomial, unreflected."""
    return binascii.crc_hqx(data, CRC_INIT)


class FrameError(ValueError):
    """Bytes between two delimiters that are not a frame. `kind` names what was wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    version: int = VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise ValueError(f"frame type {self.type} does not fit in a byte")
        if not 0 <= self.seq <= 0xFFFF:
            raise ValueError(f"sequence number {self.seq} does not fit in 16 bits")
        if not 0 <= self.version <= 0xFF:
            raise ValueError(f"version {self.version} does not fit in a byte")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")


def body(frame: Frame) -> bytes:
    """Header, payload and CRC: the bytes before COBS encoding."""
    head = HEADER.pack(frame.version, frame.type, frame.seq) + frame.payload
    return head + CRC.pack(crc16(head))


def encode(frame: Frame) -> bytes:
    """The bytes to write on the line: COBS(body) followed by the 0x00 delimiter."""
    return cobs.encode(body(frame)) + DELIMITER


def parse_body(raw: bytes) -> Frame:
    """Check the CRC of a decoded body and split it into a Frame."""
    if len(raw) < HEADER.size + CRC.size:
        raise FrameError(
            "short", f"{len(raw)} bytes, a frame has at least {HEADER.size + CRC.size}"
        )
    if len(raw) > MAX_BODY:
        raise FrameError("long", f"{len(raw)} bytes, a frame has at most {MAX_BODY}")
    (expected,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    actual = crc16(raw[: -CRC.size])
    if expected != actual:
        raise FrameError("crc", f"frame says {expected:#06x}, bytes give {actual:#06x}")
    version, type_, seq = HEADER.unpack_from(raw)
    return Frame(type_, seq, bytes(raw[HEADER.size : -CRC.size]), version)


def decode(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame, without its delimiter; raise FrameError if it is not one."""
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise FrameError("cobs", str(exc)) from None
    return parse_body(raw)


@dataclass
class DecoderCounters:
    """What a stream decoder threw away, by cause: the line-quality figures a bench reports."""

    frames: int = 0
    cobs: int = 0
    short: int = 0
    long: int = 0
    crc: int = 0
    overrun: int = 0

    @property
    def rejected(self) -> int:
        return self.cobs + self.short + self.long + self.crc + self.overrun


@dataclass
class StreamDecoder:
    """Turns a byte stream, however chunked and however noisy, into valid frames.

    Anything that is not a valid frame is counted and skipped; feed() never raises, so
    the reader thread of a port cannot be killed by what arrives on the line.
    """

    counters: DecoderCounters = field(default_factory=DecoderCounters)
    _buffer: bytearray = field(default_factory=bytearray)
    _overrun: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for chunk_end, piece in _split(data):
            if not self._overrun:
                self._buffer += piece
                if len(self._buffer) > MAX_ENCODED:
                    # Too long to be a frame: drop it all up to the next delimiter.
                    self._overrun = True
                    self.counters.overrun += 1
                    self._buffer.clear()
            if chunk_end:
                if not self._overrun and self._buffer:
                    frame = self._finish(bytes(self._buffer))
                    if frame is not None:
                        frames.append(frame)
                self._buffer.clear()
                self._overrun = False
        return frames

    def _finish(self, encoded: bytes) -> Frame | None:
        try:
            frame = decode(encoded)
        except FrameError as exc:
            setattr(self.counters, exc.kind, getattr(self.counters, exc.kind) + 1)
            return None
        self.counters.frames += 1
        return frame


def _split(data: bytes) -> list[tuple[bool, bytes]]:
    """(ends_with_delimiter, bytes before it) for each delimited piece of data."""
    parts = data.split(DELIMITER)
    return [(True, part) for part in parts[:-1]] + [(False, parts[-1])]
