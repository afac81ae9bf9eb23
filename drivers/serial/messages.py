"""Typed messages of the serial protocol and their payload layouts.

Each message is a frozen dataclass whose fields carry their wire codec, so the field order
of the class *is* the byte layout: there is one description of each message, used both to
encode and to decode, and docs/serial-protocol.md tables list the same fields in the same
order. All multi-byte numbers are little-endian; text is a u8 length then UTF-8 bytes.

Decoding never trusts the input: a truncated payload, trailing bytes, an out-of-range
value or an unknown type raises MessageError carrying the NACK reason to send back.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from enum import Enum, IntEnum
from typing import Any, Callable, ClassVar, Sequence, TypeVar

from drivers.commands import ActionKind, CellAction, InstantKind, Job, Step, check_path
from drivers.events import Severity
from drivers.serial.frames import MAX_PAYLOAD
from maps.model import Cell, Heading


class NackReason(IntEnum):
    UNKNOWN_TYPE = 1  # the type is not one this side accepts
    BAD_LENGTH = 2  # the payload is shorter or longer than its fields
    BAD_VALUE = 3  # a field is out of range (heading 7, bad UTF-8, non-adjacent steps...)
    UNSUPPORTED_VERSION = 4  # the header's version is not one this side speaks
    NO_SESSION = 5  # a sequenced frame before any HELLO (e.g. the robot rebooted)


class MessageError(ValueError):
    def __init__(self, reason: NackReason, detail: str) -> None:
        super().__init__(f"{reason.name.lower()}: {detail}")
        self.reason = reason


class Side(str, Enum):
    MASTER = "master"
    ROBOT = "robot"


class Codec(ABC):
    @abstractmethod
    def pack(self, value: Any, out: bytearray) -> None: ...

    @abstractmethod
    def unpack(self, data: bytes, pos: int) -> tuple[Any, int]: ...


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise MessageError(
            NackReason.BAD_LENGTH, f"payload ends at byte {len(data)}, field needs {pos + size}"
        )
    return data[pos : pos + size]


class Scalar(Codec):
    """One struct-packed number, converted to and from its Python value.

    `none` is the raw value that stands for None (e.g. 0xFF for "no heading").
    """

    def __init__(
        self,
        fmt: str,
        to_wire: Callable[[Any], int] = int,
        from_wire: Callable[[int], Any] = int,
        none: int | None = None,
    ) -> None:
        self.struct = struct.Struct("<" + fmt)
        self.to_wire = to_wire
        self.from_wire = from_wire
        self.none = none

    def pack(self, value: Any, out: bytearray) -> None:
        if value is None:
            if self.none is None:
                raise MessageError(NackReason.BAD_VALUE, "None is not allowed here")
            out += self.struct.pack(self.none)
            return
        raw = self.to_wire(value)
        if raw == self.none:
            raise MessageError(NackReason.BAD_VALUE, f"{value!r} collides with the 'none' marker")
        try:
            out += self.struct.pack(raw)
        except struct.error as exc:
            raise MessageError(NackReason.BAD_VALUE, f"{value!r} does not fit: {exc}") from None

    def unpack(self, data: bytes, pos: int) -> tuple[Any, int]:
        (raw,) = self.struct.unpack(_take(data, pos, self.struct.size))
        end = pos + self.struct.size
        if raw == self.none:
            return None, end
        return self.from_wire(raw), end


def scaled(fmt: str, scale: int, none: int | None = None) -> Scalar:
    """A fixed-point number: the wire carries round(value * scale)."""
    return Scalar(fmt, lambda v: round(float(v) * scale), lambda raw: raw / scale, none)


def _bool(raw: int) -> bool:
    if raw not in (0, 1):
        raise ValueError(f"boolean byte must be 0 or 1, got {raw}")
    return bool(raw)


def coded(codes: dict[Any, int]) -> Scalar:
    """An enum carried as a u8 code from a fixed table (the document's tables)."""
    kinds = {code: kind for kind, code in codes.items()}
    return Scalar("B", codes.__getitem__, kinds.__getitem__)


class Text(Codec):
    """u8 length, then that many UTF-8 bytes. With optional=True the empty text is None."""

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional

    def pack(self, value: str | None, out: bytearray) -> None:
        if value is None and self.optional:
            value = ""
        if not isinstance(value, str):
            raise MessageError(NackReason.BAD_VALUE, f"text expected, got {value!r}")
        raw = value.encode("utf-8")
        if len(raw) > 255:
            raise MessageError(
                NackReason.BAD_VALUE, f"text of {len(raw)} bytes exceeds 255: {value[:20]!r}..."
            )
        out += bytes([len(raw)]) + raw

    def unpack(self, data: bytes, pos: int) -> tuple[str | None, int]:
        size = _take(data, pos, 1)[0]
        raw = _take(data, pos + 1, size)
        text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError: BAD_VALUE
        return (None if self.optional and not text else text), pos + 1 + size


class CellCodec(Codec):
    """x u16 then y u16; with optional=True, 0xFFFF 0xFFFF is "no cell"."""

    _XY = struct.Struct("<HH")
    _NONE = (0xFFFF, 0xFFFF)

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional

    def pack(self, value: Cell | None, out: bytearray) -> None:
        if value is None and self.optional:
            out += self._XY.pack(*self._NONE)
            return
        if value is None or tuple(value) == self._NONE:
            raise MessageError(NackReason.BAD_VALUE, f"cell {value} cannot be sent")
        try:
            out += self._XY.pack(value.x, value.y)
        except struct.error:
            raise MessageError(NackReason.BAD_VALUE, f"cell {value} is outside 0..65534") from None

    def unpack(self, data: bytes, pos: int) -> tuple[Cell | None, int]:
        x, y = self._XY.unpack(_take(data, pos, self._XY.size))
        end = pos + self._XY.size
        if (x, y) == self._NONE:
            if self.optional:
                return None, end
            raise MessageError(NackReason.BAD_VALUE, "a cell is required here")
        return Cell(x, y), end


class ListOf(Codec):
    """A count (u8 or u16) then that many items."""

    def __init__(self, item: Codec, count_fmt: str = "B") -> None:
        self.item = item
        self.count = struct.Struct("<" + count_fmt)

    def pack(self, value: Sequence[Any], out: bytearray) -> None:
        try:
            out += self.count.pack(len(value))
        except struct.error:
            raise MessageError(
                NackReason.BAD_VALUE, f"{len(value)} items do not fit the count field"
            ) from None
        for item in value:
            self.item.pack(item, out)

    def unpack(self, data: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
        (count,) = self.count.unpack(_take(data, pos, self.count.size))
        pos += self.count.size
        items = []
        for _ in range(count):
            item, pos = self.item.unpack(data, pos)
            items.append(item)
        return tuple(items), pos


class Record(Codec):
    """A dataclass laid out field after field, each field with its codec."""

    def __init__(self, cls: type, layout: Sequence[tuple[str, Codec]]) -> None:
        self.cls = cls
        self.layout = tuple(layout)

    def pack(self, value: Any, out: bytearray) -> None:
        for name, codec in self.layout:
            try:
                codec.pack(getattr(value, name), out)
            except MessageError as exc:
                raise MessageError(exc.reason, f"{self.cls.__name__}.{name}: {exc}") from None
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise MessageError(
                    NackReason.BAD_VALUE, f"{self.cls.__name__}.{name}: {exc!r}"
                ) from None

    def unpack(self, data: bytes, pos: int) -> tuple[Any, int]:
        values = {}
        for name, codec in self.layout:
            try:
                values[name], pos = codec.unpack(data, pos)
            except MessageError as exc:
                raise MessageError(exc.reason, f"{self.cls.__name__}.{name}: {exc}") from None
            except (ValueError, KeyError) as exc:
                raise MessageError(
                    NackReason.BAD_VALUE, f"{self.cls.__name__}.{name}: {exc!r}"
                ) from None
        try:
            return self.cls(**values), pos
        except (TypeError, ValueError) as exc:
            raise MessageError(NackReason.BAD_VALUE, f"{self.cls.__name__}: {exc}") from None


U8 = Scalar("B")
U16 = Scalar("H")
U32 = Scalar("I")
BOOL = Scalar("B", int, _bool)
CELL = CellCodec()
OPT_CELL = CellCodec(optional=True)
HEADING = Scalar("B", int, Heading)
OPT_HEADING = Scalar("B", int, Heading, none=0xFF)
OPT_INDEX = Scalar("H", none=0xFFFF)
TEXT = Text()
OPT_TEXT = Text(optional=True)
MILLI_U16 = scaled("H", 1000)  # state of charge 0..1 as per mille; seconds as ms
MILLI_U32 = scaled("I", 1000)
MILLI_I16 = scaled("h", 1000)  # metres as mm (offsets), radians as mrad, m/s as mm/s
MILLI_I32 = scaled("i", 1000)  # metres as mm (world position)
DECI_U16 = scaled("H", 10)  # kilograms in 0.1 kg

ACTION_CODES = {
    ActionKind.LIFT: 1,
    ActionKind.LOWER: 2,
    ActionKind.START_CHARGING: 3,
    ActionKind.STOP_CHARGING: 4,
    ActionKind.WAIT: 5,
}
#: INIT_POSITION travels as SET_POSE, which also carries the cell and heading.
INSTANT_CODES = {
    InstantKind.PAUSE: 1,
    InstantKind.RESUME: 2,
    InstantKind.CANCEL: 3,
    InstantKind.STOP: 4,
    InstantKind.RESET: 5,
    InstantKind.STATUS: 6,
}
SEVERITY_CODES = {Severity.WARNING: 1, Severity.FATAL: 2}
ACTION_KIND = coded(ACTION_CODES)
INSTANT_KIND = coded(INSTANT_CODES)
SEVERITY = coded(SEVERITY_CODES)
NACK_REASON = Scalar("B", int, NackReason)

ACTION = Record(
    CellAction,
    (("action_id", TEXT), ("kind", ACTION_KIND), ("shelf_id", OPT_TEXT), ("duration", MILLI_U32)),
)
STEP = Record(Step, (("cell", CELL), ("heading", OPT_HEADING), ("actions", ListOf(ACTION))))
STEPS = ListOf(STEP)


@dataclass(frozen=True)
class Message:
    """Base of every message; subclasses are frozen dataclasses registered by @message."""

    TYPE: ClassVar[int]
    RELIABLE: ClassVar[bool]  # sequenced, acknowledged and retransmitted
    SENDER: ClassVar[Side | None]  # None: both sides send it
    RECORD: ClassVar[Record]


_BY_TYPE: dict[int, type[Message]] = {}


def wire(codec: Codec, **kwargs: Any) -> Any:
    """A dataclass field carrying its wire codec."""
    return field(metadata={"codec": codec}, **kwargs)


M = TypeVar("M", bound=type[Message])


def message(type_code: int, reliable: bool, sender: Side | None) -> Callable[[M], M]:
    """Register a message dataclass under its type code and derive its layout from its fields."""

    def register(cls: M) -> M:
        if type_code in _BY_TYPE:
            raise ValueError(f"message type {type_code:#04x} registered twice")
        cls.TYPE = type_code
        cls.RELIABLE = reliable
        cls.SENDER = sender
        cls.RECORD = Record(cls, [(f.name, f.metadata["codec"]) for f in fields(cls)])
        _BY_TYPE[type_code] = cls
        return cls

    return register


@message(0x01, reliable=False, sender=Side.MASTER)
@dataclass(frozen=True)
class Hello(Message):
    nonce: int = wire(U32)  # session id chosen by the master; echoed in IDENTITY
    watchdog_ms: int = wire(U16)  # the robot stops if it hears nothing for this long
    status_interval_ms: int = wire(U16)  # how often the robot sends STATUS

    def __post_init__(self) -> None:
        if self.watchdog_ms < 100 or self.status_interval_ms < 20:
            raise ValueError(
                f"watchdog {self.watchdog_ms} ms (>= 100) or status interval "
                f"{self.status_interval_ms} ms (>= 20) out of range"
            )


@message(0x02, reliable=False, sender=Side.ROBOT)
@dataclass(frozen=True)
class Identity(Message):
    nonce: int = wire(U32)
    robot_id: str = wire(TEXT)
    firmware: str = wire(TEXT)
    capabilities: int = wire(U16)  # bit 0 lift/lower, bit 1 charging, bit 2 turntable
    max_payload: int = wire(U16)  # largest payload the robot accepts


@message(0x03, reliable=False, sender=None)
@dataclass(frozen=True)
class Ack(Message):
    """Answers the sequenced frame whose seq is in this frame's header."""


@message(0x04, reliable=False, sender=None)
@dataclass(frozen=True)
class Nack(Message):
    reason: NackReason = wire(NACK_REASON)


@message(0x05, reliable=False, sender=Side.MASTER)
@dataclass(frozen=True)
class Heartbeat(Message):
    """Keeps the robot's watchdog fed when the master has nothing else to say."""


@message(0x10, reliable=True, sender=Side.MASTER)
@dataclass(frozen=True)
class SetPose(Message):
    cell: Cell = wire(CELL)
    heading: Heading = wire(HEADING)
    command_id: str = wire(TEXT, default="")


@message(0x11, reliable=True, sender=Side.MASTER)
@dataclass(frozen=True)
class NewJob(Message):
    job_id: str = wire(TEXT)
    steps: tuple[Step, ...] = wire(STEPS)

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("a job needs an id")
        Job(self.job_id, self.steps)  # a job that fleet/ could not have built is a BAD_VALUE


@message(0x12, reliable=True, sender=Side.MASTER)
@dataclass(frozen=True)
class ExtendJob(Message):
    job_id: str = wire(TEXT)
    first_index: int = wire(U16)  # index the first appended step takes in the job
    steps: tuple[Step, ...] = wire(STEPS)

    def __post_init__(self) -> None:
        if not self.job_id or not self.steps:
            raise ValueError("an extension needs a job id and at least one step")
        check_path(self.steps, f"extension of job {self.job_id!r}")


@message(0x13, reliable=True, sender=Side.MASTER)
@dataclass(frozen=True)
class Instant(Message):
    kind: InstantKind = wire(INSTANT_KIND)
    command_id: str = wire(TEXT, default="")


@message(0x20, reliable=False, sender=Side.ROBOT)
@dataclass(frozen=True)
class Status(Message):
    uptime_ms: int = wire(U32)
    cell: Cell | None = wire(OPT_CELL)  # cell of the last QR code read
    heading: Heading | None = wire(OPT_HEADING)
    offset_x: float = wire(MILLI_I16)  # metres from that code's centre, world frame
    offset_y: float = wire(MILLI_I16)
    x: float = wire(MILLI_I32)  # metres, world frame
    y: float = wire(MILLI_I32)
    theta: float = wire(MILLI_I16)  # radians, counter-clockwise from east
    speed: float = wire(MILLI_I16)  # metres per second
    driving: bool = wire(BOOL)
    paused: bool = wire(BOOL)
    stopped: bool = wire(BOOL)  # emergency stop (or watchdog) holds the robot
    charging: bool = wire(BOOL)
    charge: float = wire(MILLI_U16)  # state of charge 0..1
    shelf_id: str | None = wire(OPT_TEXT)
    weight_kg: float = wire(DECI_U16)
    job_id: str | None = wire(OPT_TEXT)
    step_index: int | None = wire(OPT_INDEX)  # last step of the job reached
    steps_total: int = wire(U16)  # steps the robot holds for the job
    rx_rejected: int = wire(U16)  # frames the robot dropped (COBS/CRC/length), wraps
    errors: tuple[str, ...] = wire(ListOf(TEXT))


@message(0x21, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class CellReached(Message):
    cell: Cell = wire(CELL)
    heading: Heading = wire(HEADING)
    job_id: str | None = wire(OPT_TEXT)
    step_index: int | None = wire(OPT_INDEX)


@message(0x22, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class ActionFinished(Message):
    job_id: str | None = wire(OPT_TEXT)
    action_id: str = wire(TEXT)
    kind: ActionKind = wire(ACTION_KIND)


@message(0x23, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class ActionFailed(Message):
    job_id: str | None = wire(OPT_TEXT)
    action_id: str = wire(TEXT)
    kind: ActionKind = wire(ACTION_KIND)
    reason: str = wire(TEXT)


@message(0x24, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class JobFinished(Message):
    job_id: str = wire(TEXT)


@message(0x25, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class JobRejected(Message):
    job_id: str = wire(TEXT)
    reason: str = wire(TEXT)


@message(0x26, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class ErrorRaised(Message):
    code: str = wire(TEXT)
    severity: Severity = wire(SEVERITY)
    message: str = wire(TEXT)


@message(0x27, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class ErrorCleared(Message):
    code: str = wire(TEXT)


@message(0x28, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class BatteryReport(Message):
    charge: float = wire(MILLI_U16)
    charging: bool = wire(BOOL)


@message(0x29, reliable=True, sender=Side.ROBOT)
@dataclass(frozen=True)
class LoadChanged(Message):
    shelf_id: str | None = wire(OPT_TEXT)
    weight_kg: float = wire(DECI_U16)


def message_types() -> dict[int, type[Message]]:
    return dict(_BY_TYPE)


def encode(msg: Message) -> bytes:
    """The payload of `msg`; MessageError if a field cannot be carried or it is too large."""
    out = bytearray()
    type(msg).RECORD.pack(msg, out)
    if len(out) > MAX_PAYLOAD:
        raise MessageError(
            NackReason.BAD_LENGTH,
            f"{type(msg).__name__} payload of {len(out)} bytes exceeds {MAX_PAYLOAD}",
        )
    return bytes(out)


def decode(type_code: int, payload: bytes) -> Message:
    """The message of this type in `payload`; MessageError (with the NACK reason) if not."""
    cls = _BY_TYPE.get(type_code)
    if cls is None:
        raise MessageError(NackReason.UNKNOWN_TYPE, f"no message type {type_code:#04x}")
    msg, end = cls.RECORD.unpack(payload, 0)
    if end != len(payload):
        raise MessageError(
            NackReason.BAD_LENGTH, f"{cls.__name__} ends at byte {end}, payload has {len(payload)}"
        )
    return msg


def job_messages(job_id: str, steps: Sequence[Step], first_index: int = 0) -> list[Message]:
    """NEW_JOB (first_index 0) or EXTEND_JOB, split into as many frames as the payload limit needs.

    The frames of one split are sent back to back on the same reliable channel, so the
    robot holds the whole path long before it can drive off the end of the first part.
    """

    if not steps:
        raise ValueError(f"job {job_id!r}: no steps to send")

    def make(part: Sequence[Step], at: int) -> Message:
        return NewJob(job_id, tuple(part)) if at == 0 else ExtendJob(job_id, at, tuple(part))

    def size(step: Step) -> int:
        out = bytearray()
        STEP.pack(step, out)
        return len(out)

    head = bytearray()
    TEXT.pack(job_id, head)
    overhead = len(head) + U16.struct.size + STEPS.count.size  # job_id, first_index, count
    messages: list[Message] = []
    chunk: list[Step] = []
    used = overhead
    index = first_index
    for step in steps:
        need = size(step)
        if overhead + need > MAX_PAYLOAD:
            raise MessageError(
                NackReason.BAD_LENGTH, f"job {job_id!r}: step at {step.cell} alone exceeds a frame"
            )
        if chunk and used + need > MAX_PAYLOAD:
            messages.append(make(chunk, index))
            index += len(chunk)
            chunk, used = [], overhead
        chunk.append(step)
        used += need
    messages.append(make(chunk, index))
    return messages
