"""The test vectors of docs/serial-protocol.md, read from the document itself.

If the implementation and the document disagree, this fails: another implementation can
trust the vectors because ours is checked against them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.commands import ActionKind, CellAction, InstantKind, Step
from drivers.events import Severity
from drivers.serial import frames
from drivers.serial import messages as wire
from drivers.serial.channel import Channel
from drivers.serial.frames import Frame, FrameError, StreamDecoder
from drivers.serial.messages import NackReason, Side
from maps.model import Cell, Heading

DOC = Path(__file__).resolve().parent.parent / "docs" / "serial-protocol.md"

#: What each vector means, as objects: (seq, message).
EXPECTED: dict[str, tuple[int, wire.Message]] = {
    "V01": (0, wire.Hello(0x12345678, 1000, 200)),
    "V02": (0, wire.Identity(0x12345678, "r7", "fw-2.1", 0b111, 500)),
    "V03": (5, wire.Ack()),
    "V04": (6, wire.Nack(NackReason.BAD_VALUE)),
    "V05": (0, wire.Heartbeat()),
    "V06": (1, wire.SetPose(Cell(2, 3), Heading.WEST, "")),
    "V07": (2, wire.NewJob("J1", (
        Step(Cell(2, 3)),
        Step(Cell(3, 3), Heading.EAST, (CellAction("a1", ActionKind.LIFT, "S9"),)),
        Step(Cell(3, 3), None, (CellAction("a2", ActionKind.WAIT, None, 2.5),)),
    ))),
    "V08": (3, wire.ExtendJob("J1", 3, (Step(Cell(3, 2), Heading.NORTH, (CellAction("a3", ActionKind.LOWER, "S9"),)),))),
    "V09": (4, wire.Instant(InstantKind.PAUSE)),
    "V10": (5, wire.Instant(InstantKind.STOP, "e1")),
    "V11": (0, wire.Status(
        61000, Cell(3, 3), Heading.EAST, 0.012, -0.004, 3.75, 2.5, 0.0, 0.8, True, False, False,
        False, 0.76, "S9", 312.5, "J1", 1, 3, 2, (),
    )),
    "V12": (0, wire.Status(
        1500, None, None, 0, 0, 0, 0, 0, 0, False, False, True, False, 0.5, None, 0, None, None,
        0, 0, ("watchdog", "emergency_stop"),
    )),
    "V13": (1, wire.CellReached(Cell(3, 3), Heading.EAST, "J1", 1)),
    "V14": (2, wire.ActionFinished("J1", "a1", ActionKind.LIFT)),
    "V15": (3, wire.ActionFailed("J1", "a1", ActionKind.LIFT, "no shelf")),
    "V16": (4, wire.JobFinished("J1")),
    "V17": (5, wire.JobRejected("J2", "busy")),
    "V18": (6, wire.ErrorRaised("laser_stop", Severity.WARNING, "obstacle ahead")),
    "V19": (7, wire.ErrorCleared("laser_stop")),
    "V20": (8, wire.BatteryReport(0.25, True)),
    "V21": (9, wire.LoadChanged(None, 0.0)),
    # Long enough for a full 254-byte COBS block: the case hand-written encoders get wrong.
    "V22": (10, wire.ErrorRaised("laser_stop", Severity.FATAL, ("front laser: obstacle at 0.4 m; " * 8)[:250])),
}  # fmt: skip

#: The refusals: what a robot in a fresh session answers (None: nothing).
REFUSALS: dict[str, tuple[str, tuple[int, NackReason] | None]] = {
    "X01": ("crc", None),
    "X02": ("", (1, NackReason.UNKNOWN_TYPE)),
    "X03": ("", (1, NackReason.BAD_VALUE)),
    "X04": ("", (1, NackReason.BAD_LENGTH)),
    "X05": ("", (0, NackReason.UNSUPPORTED_VERSION)),
}


def _vectors() -> dict[str, dict[str, str]]:
    """name -> {'title', 'body', 'crc', 'wire'} from the document's code blocks."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^([VX]\d\d) (.+)$", line)
        if head:
            current = found.setdefault(head.group(1), {"title": head.group(2)})
            continue
        field = re.match(r"^  (body|crc|wire) +([0-9a-f ]+)$", line)
        if field and current is not None:
            current[field.group(1)] = field.group(2).strip()
    return found


VECTORS = _vectors()


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_document_lists_every_vector_and_every_message_type() -> None:
    assert sorted(VECTORS) == sorted([*EXPECTED, *REFUSALS])
    covered = {type(message) for _, message in EXPECTED.values()}
    assert covered == set(wire.message_types().values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_encodes_to_the_documented_bytes(name: str) -> None:
    seq, message = EXPECTED[name]
    vector = VECTORS[name]
    assert vector["title"].startswith(_title(message)) and f"seq={seq}" in vector["title"]
    frame = Frame(message.TYPE, seq, wire.encode(message))
    body = frames.body(frame)
    assert body[:-2] == _hex(vector["body"])
    assert body[-2:] == _hex(vector["crc"])
    assert frames.encode(frame) == _hex(vector["wire"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_decodes_to_its_meaning(name: str) -> None:
    seq, message = EXPECTED[name]
    (frame,) = StreamDecoder().feed(_hex(VECTORS[name]["wire"]))
    assert (frame.version, frame.seq) == (1, seq)
    assert wire.decode(frame.type, frame.payload) == message


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_vectors(name: str) -> None:
    kind, answer = REFUSALS[name]
    encoded = _hex(VECTORS[name]["wire"])
    if kind:
        with pytest.raises(FrameError) as caught:
            frames.decode(encoded[:-1])
        assert caught.value.kind == kind
    robot = Channel(Side.ROBOT)
    robot.start_session()
    delivered = [e for f in StreamDecoder().feed(encoded) for e in robot.receive(f, 0.0)]
    assert delivered == []
    replies = StreamDecoder().feed(robot.take_output())
    if answer is None:
        assert replies == []
    else:
        (reply,) = replies
        assert (reply.type, reply.seq) == (wire.Nack.TYPE, answer[0])
        assert wire.decode(reply.type, reply.payload) == wire.Nack(answer[1])


def _title(message: wire.Message) -> str:
    """The document's NAME for a message class: SetPose -> SET_POSE, BatteryReport -> BATTERY."""
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(message).__name__).upper()
    return {"BATTERY_REPORT": "BATTERY"}.get(name, name)
