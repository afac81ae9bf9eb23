"""Messages: every type round-trips; malformed payloads give the right NACK reason."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.commands import ActionKind, CellAction, Step
from drivers.events import Severity
from drivers.serial import messages as wire
from drivers.serial.frames import MAX_PAYLOAD
from drivers.serial.messages import MessageError, NackReason
from maps.model import Cell, Heading

PATH = (
    Step(Cell(0, 0)),
    Step(Cell(1, 0), Heading.EAST),
    Step(Cell(1, 1), Heading.SOUTH, (CellAction("lift-1", ActionKind.LIFT, "shelf-é"),)),
    Step(
        Cell(1, 1),
        None,
        (CellAction("w", ActionKind.WAIT, None, 0.001), CellAction("c", ActionKind.START_CHARGING)),
    ),
)

EXAMPLES: list[wire.Message] = [
    wire.Hello(0xFFFFFFFF, 100, 20),
    wire.Identity(0, "robot-ünïcode", "", 0xFFFF, 500),
    wire.Ack(),
    wire.Nack(NackReason.NO_SESSION),
    wire.Heartbeat(),
    wire.SetPose(Cell(65534, 0), Heading.SOUTH, "cmd-9"),
    wire.NewJob("job-1", PATH),
    wire.ExtendJob("job-1", 65535, PATH[2:]),
    *[wire.Instant(kind, f"c-{kind.value}") for kind in wire.INSTANT_CODES],
    wire.Status(
        0xFFFFFFFF,
        Cell(0, 65534),
        Heading.WEST,
        -32.768,
        32.767,
        -2147483.648,
        2147483.647,
        -math.pi,
        -1.5,
        True,
        True,
        True,
        True,
        1.0,
        "s" * 255,
        6553.5,
        "j",
        0,
        65535,
        65535,
        ("a", "b", "é" * 50),
    ),  # fmt: skip
    wire.CellReached(Cell(4, 5), Heading.NORTH, None, None),
    wire.ActionFinished(None, "a", ActionKind.STOP_CHARGING),
    wire.ActionFailed("j", "a", ActionKind.LOWER, "shelf stuck"),
    wire.JobFinished("j"),
    wire.JobRejected("j", ""),
    wire.ErrorRaised("motor_fault", Severity.FATAL, "left wheel"),
    wire.ErrorCleared("motor_fault"),
    wire.BatteryReport(0.0, False),
    wire.LoadChanged("S-1", 0.1),
]


def test_examples_cover_every_message_type() -> None:
    assert {type(m) for m in EXAMPLES} == set(wire.message_types().values())


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: wire.Message) -> None:
    payload = wire.encode(message)
    decoded = wire.decode(message.TYPE, payload)
    if isinstance(message, wire.Status):
        # Fixed-point fields come back at their wire resolution.
        assert decoded.theta == pytest.approx(message.theta, abs=5e-4)
        decoded = type(decoded)(**{**decoded.__dict__, "theta": message.theta})
    assert decoded == message
    assert wire.encode(decoded) == payload


def test_type_codes_are_stable() -> None:
    # The document's table; changing a code is a new protocol version.
    codes = {cls.__name__: code for code, cls in wire.message_types().items()}
    assert codes == {
        "Hello": 0x01, "Identity": 0x02, "Ack": 0x03, "Nack": 0x04, "Heartbeat": 0x05,
        "SetPose": 0x10, "NewJob": 0x11, "ExtendJob": 0x12, "Instant": 0x13,
        "Status": 0x20, "CellReached": 0x21, "ActionFinished": 0x22, "ActionFailed": 0x23,
        "JobFinished": 0x24, "JobRejected": 0x25, "ErrorRaised": 0x26, "ErrorCleared": 0x27,
        "BatteryReport": 0x28, "LoadChanged": 0x29,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("type_code", "payload", "reason"),
    [
        (0x7F, b"", NackReason.UNKNOWN_TYPE),
        (wire.Instant.TYPE, b"\x01", NackReason.BAD_LENGTH),  # command_id missing
        (wire.Instant.TYPE, b"\x01\x00\x00", NackReason.BAD_LENGTH),  # a byte too many
        (wire.Instant.TYPE, b"\x09\x00", NackReason.BAD_VALUE),  # no instant kind 9
        (wire.SetPose.TYPE, b"\x01\x00\x01\x00\x04\x00", NackReason.BAD_VALUE),  # heading 4
        (wire.SetPose.TYPE, b"\xff\xff\xff\xff\x00\x00", NackReason.BAD_VALUE),  # no cell
        (wire.JobFinished.TYPE, b"\x02\xc3\x28", NackReason.BAD_VALUE),  # invalid UTF-8
        (wire.BatteryReport.TYPE, b"\x10\x00\x02", NackReason.BAD_VALUE),  # bool 2
        (wire.Hello.TYPE, b"\x00\x00\x00\x00\x10\x00\x10\x00", NackReason.BAD_VALUE),  # 16 ms
        # A job whose second step jumps two cells.
        (
            wire.NewJob.TYPE,
            b"\x01J\x02" + b"\x00\x00\x00\x00\xff\x00" + b"\x02\x00\x00\x00\xff\x00",
            NackReason.BAD_VALUE,
        ),
        (wire.NewJob.TYPE, b"\x01J\x00", NackReason.BAD_VALUE),  # no steps
    ],
)
def test_malformed_payload_names_the_nack_reason(
    type_code: int, payload: bytes, reason: NackReason
) -> None:
    with pytest.raises(MessageError) as caught:
        wire.decode(type_code, payload)
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    "message",
    [
        wire.JobFinished("x" * 256),  # text longer than its length byte
        wire.SetPose(Cell(70000, 0), Heading.EAST),
        wire.BatteryReport(70.0, False),  # 70000 permille
        wire.CellReached(Cell(1, 1), Heading.EAST, "j", 0xFFFF),  # collides with "none"
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(message: wire.Message) -> None:
    with pytest.raises(MessageError):
        wire.encode(message)


def test_long_job_is_split_into_frames_that_rebuild_it() -> None:
    steps = [
        Step(Cell(i, 0), Heading.EAST, (CellAction(f"wait-{i}", ActionKind.WAIT, None, 1.0),))
        for i in range(300)
    ]
    parts = wire.job_messages("long", steps)
    assert isinstance(parts[0], wire.NewJob) and all(
        isinstance(p, wire.ExtendJob) for p in parts[1:]
    )
    assert len(parts) > 1
    rebuilt: list[Step] = list(parts[0].steps)
    for part in parts[1:]:
        assert part.first_index == len(rebuilt)
        rebuilt += part.steps
    assert rebuilt == steps
    assert all(len(wire.encode(p)) <= MAX_PAYLOAD for p in parts)


def test_extension_split_starts_at_the_given_index() -> None:
    steps = [Step(Cell(0, i)) for i in range(600)]  # 6 bytes each: 82 to a frame
    parts = wire.job_messages("j", steps, first_index=7)
    assert all(isinstance(p, wire.ExtendJob) for p in parts)
    starts = [p.first_index for p in parts]
    assert starts == [7 + sum(len(p.steps) for p in parts[:i]) for i in range(len(parts))]
    assert sum(len(p.steps) for p in parts) == 600 and len(parts) == 8


def test_step_too_large_for_any_frame_is_an_error() -> None:
    actions = tuple(CellAction("a" * 200, ActionKind.WAIT, None, 1.0) for _ in range(3))
    with pytest.raises(MessageError, match="alone exceeds"):
        wire.job_messages("j", [Step(Cell(0, 0), None, actions)])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(wire.message_types())), st.binary(max_size=120))
def test_fuzz_decode_raises_only_message_error(type_code: int, payload: bytes) -> None:
    try:
        message = wire.decode(type_code, payload)
    except MessageError:
        return
    # Whatever decodes is canonical: it encodes back to the same bytes.
    assert wire.encode(message) == payload


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(list(Heading)), min_size=0, max_size=40),
    st.lists(st.sampled_from(list(ActionKind)), max_size=5),
    st.text(min_size=1, max_size=30),
)
def test_fuzz_jobs_round_trip(moves: list[Heading], kinds: list[ActionKind], job_id: str) -> None:
    cell = Cell(100, 100)
    steps = [Step(cell)]
    for i, heading in enumerate(moves):
        dx, dy = heading.step
        cell = Cell(cell.x + dx, cell.y + dy)
        actions = tuple(
            CellAction(f"{i}-{k.value}", k, "S" if i % 2 else None, i / 10) for k in kinds[: i % 4]
        )
        steps.append(Step(cell, heading if i % 3 else None, actions))
    parts = wire.job_messages(job_id, steps)
    rebuilt = [s for p in parts for s in wire.decode(p.TYPE, wire.encode(p)).steps]
    assert rebuilt == steps
