"""The reliable channel's rules, driven frame by frame in explicit time (no threads)."""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.commands import InstantKind
from drivers.serial import frames
from drivers.serial import messages as wire
from drivers.serial.channel import (
    Channel,
    ChannelConfig,
    Received,
    Refused,
    Undelivered,
    next_seq,
    previous_seq,
)
from drivers.serial.frames import Frame, StreamDecoder
from drivers.serial.messages import NackReason, Side

CONFIG = ChannelConfig(ack_timeout=0.1, max_retries=3)


class Wire:
    """Carries one channel's output to the other, frame by frame, through a filter."""

    def __init__(self) -> None:
        self.master = Channel(Side.MASTER, CONFIG)
        self.robot = Channel(Side.ROBOT, CONFIG)
        self.master.start_session()
        self.robot.start_session()
        self.to_robot: list[Frame] = []  # every frame the master wrote, delivered or not
        self.to_master: list[Frame] = []

    def carry(
        self, now: float, keep: Callable[[Frame], bool] = lambda f: True, rounds: int = 4
    ) -> tuple[list, list]:
        """Exchange frames until quiet; returns (events at robot, events at master)."""
        at_robot: list = []
        at_master: list = []
        for _ in range(rounds):
            out_m = StreamDecoder().feed(self.master.take_output())
            out_r = StreamDecoder().feed(self.robot.take_output())
            self.to_robot += out_m
            self.to_master += out_r
            for frame in out_m:
                if keep(frame):
                    at_robot += self.robot.receive(frame, now)
            for frame in out_r:
                if keep(frame):
                    at_master += self.master.receive(frame, now)
        return at_robot, at_master


def pause(n: int) -> wire.Instant:
    return wire.Instant(InstantKind.PAUSE, f"c{n}")


def test_messages_are_delivered_once_in_order_with_stop_and_wait() -> None:
    w = Wire()
    for n in range(5):
        w.master.send(pause(n), 0.0)
    at_robot, at_master = w.carry(0.0, rounds=1)
    assert len(w.to_robot) == 1  # one frame in flight, the rest wait for its ack
    at_robot, at_master = w.carry(0.0, rounds=12)
    assert at_robot == [Received(pause(n)) for n in range(1, 5)]
    assert at_master == []
    assert [f.seq for f in w.to_robot] == [1, 2, 3, 4, 5]
    assert w.robot.counters.delivered == 5
    assert not w.master.busy


def test_lost_ack_causes_retransmission_and_the_duplicate_is_suppressed() -> None:
    w = Wire()
    w.master.send(pause(1), 0.0)
    first_ack = []

    def drop_first_ack(frame: Frame) -> bool:
        if frame.type == wire.Ack.TYPE and not first_ack:
            first_ack.append(frame)
            return False
        return True

    at_robot, _ = w.carry(0.0, drop_first_ack)
    assert at_robot == [Received(pause(1))]
    assert w.master.busy  # still waiting for the ack that was lost
    assert w.master.poll(0.05) == []  # not yet overdue
    assert w.master.poll(0.1) == []  # overdue: retransmitted
    again, _ = w.carry(0.1, drop_first_ack)
    assert again == []  # the robot saw the same seq again and did not deliver it twice
    assert not w.master.busy
    assert w.master.counters.retransmitted == 1
    assert w.robot.counters.duplicates == 1
    # The robot answered the repeat with the same ACK, byte for byte.
    acks = [f for f in w.to_master if f.type == wire.Ack.TYPE]
    assert len(acks) == 2 and acks[0] == acks[1]


def test_lost_frame_is_retransmitted_then_given_up() -> None:
    w = Wire()
    w.master.send(pause(1), 0.0)
    w.master.send(pause(2), 0.0)
    w.carry(0.0, keep=lambda f: False)
    events: list = []
    t = 0.0
    while not events:
        t += 0.125  # a little over the ack timeout, exact in binary
        events += w.master.poll(t)
    assert events == [Undelivered(pause(1))]
    assert t == 0.125 * (CONFIG.max_retries + 1)
    assert w.master.counters.retransmitted == CONFIG.max_retries
    # The next message goes out once the first is given up (seq 1 stays lost).
    at_robot, _ = w.carry(t, keep=lambda f: f.seq != 1)
    assert [f.seq for f in w.to_robot] == [1] * (CONFIG.max_retries + 1) + [2]
    # The robot never saw seq 1, so seq 2 is out of sequence: only a new session heals
    # this, which is why the master treats a give-up as a lost robot.
    assert at_robot == []
    assert w.robot.counters.out_of_sequence == 1


def test_out_of_sequence_frames_are_dropped() -> None:
    w = Wire()
    ahead = Frame(wire.Instant.TYPE, 5, wire.encode(pause(5)))
    assert w.robot.receive(ahead, 0.0) == []
    assert w.robot.take_output() == b""
    assert w.robot.counters.out_of_sequence == 1
    # A reordered old frame after newer ones is not delivered either.
    for n in (1, 2, 3):
        w.robot.receive(Frame(wire.Instant.TYPE, n, wire.encode(pause(n))), 0.0)
    assert w.robot.receive(Frame(wire.Instant.TYPE, 1, wire.encode(pause(1))), 0.0) == []
    assert w.robot.counters.delivered == 3 and w.robot.counters.out_of_sequence == 2


def test_nack_consumes_the_sequence_number_and_is_reported() -> None:
    w = Wire()
    w.master.send(pause(1), 0.0)
    raw = StreamDecoder().feed(w.master.take_output())[0]
    garbled = Frame(raw.type, raw.seq, b"\x09\x00")  # instant kind 9: BAD_VALUE
    assert w.robot.receive(garbled, 0.0) == []
    _, at_master = w.carry(0.0)
    assert at_master == [Refused(pause(1), NackReason.BAD_VALUE)]
    w.master.send(pause(2), 0.0)
    at_robot, _ = w.carry(0.0)
    assert at_robot == [Received(pause(2))]


def test_robot_without_session_answers_no_session() -> None:
    w = Wire()
    w.robot.end_session()  # the robot restarted
    w.master.send(pause(1), 0.0)
    at_robot, at_master = w.carry(0.0)
    assert at_robot == []
    assert at_master == [Refused(pause(1), NackReason.NO_SESSION)]


def test_sequenced_type_without_seq_and_wrong_direction_are_refused() -> None:
    robot = Channel(Side.ROBOT)
    robot.start_session()
    assert robot.receive(Frame(wire.Instant.TYPE, 0, wire.encode(pause(1))), 0.0) == []
    assert (
        robot.receive(Frame(wire.JobFinished.TYPE, 1, wire.encode(wire.JobFinished("j"))), 0.0)
        == []
    )
    replies = [
        (f.seq, wire.decode(f.type, f.payload)) for f in StreamDecoder().feed(robot.take_output())
    ]
    assert replies == [
        (0, wire.Nack(NackReason.BAD_VALUE)),
        (1, wire.Nack(NackReason.UNKNOWN_TYPE)),
    ]


def test_answers_are_never_answered() -> None:
    robot = Channel(Side.ROBOT)
    robot.start_session()
    assert robot.receive(Frame(wire.Nack.TYPE, 3, b"\x63"), 0.0) == []  # reason 99
    assert robot.receive(Frame(wire.Ack.TYPE, 3, b""), 0.0) == []  # nothing in flight
    assert robot.take_output() == b""
    assert robot.counters.malformed == 1 and robot.counters.stray_answers == 1


def test_urgent_message_jumps_the_queue_but_not_the_frame_in_flight() -> None:
    w = Wire()
    for n in range(3):
        w.master.send(pause(n), 0.0)
    stop = wire.Instant(InstantKind.STOP)
    w.master.send(stop, 0.0, urgent=True)
    at_robot, _ = w.carry(0.0, rounds=10)
    assert [e.message for e in at_robot] == [pause(0), stop, pause(1), pause(2)]


def test_sequence_numbers_wrap_past_zero() -> None:
    assert next_seq(0xFFFF) == 1 and previous_seq(1) == 0xFFFF
    w = Wire()
    w.master._tx_seq = 0xFFFE
    w.robot._rx_expected = 0xFFFE
    for n in range(4):
        w.master.send(pause(n), 0.0)
    at_robot, _ = w.carry(0.0, rounds=10)
    assert [e.message for e in at_robot] == [pause(n) for n in range(4)]
    assert [f.seq for f in w.to_robot] == [0xFFFE, 0xFFFF, 1, 2]


def test_unsequenced_messages_bypass_the_queue() -> None:
    w = Wire()
    w.master.send(pause(1), 0.0)
    w.master.send(wire.Heartbeat(), 0.0)
    sent = StreamDecoder().feed(w.master.take_output())
    assert [(f.type, f.seq) for f in sent] == [(wire.Instant.TYPE, 1), (wire.Heartbeat.TYPE, 0)]


def test_unencodable_message_is_refused_at_send() -> None:
    channel = Channel(Side.ROBOT)
    channel.start_session()
    with pytest.raises(wire.MessageError):
        channel.send(wire.JobFinished("x" * 300), 0.0)
    assert not channel.busy


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="ack_timeout"):
        ChannelConfig(ack_timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        ChannelConfig(max_retries=-1)


def test_frames_written_by_a_channel_are_valid_on_the_wire() -> None:
    channel = Channel(Side.MASTER)
    channel.start_session()
    channel.send(pause(1), 0.0)
    out = channel.take_output()
    assert out.endswith(frames.DELIMITER) and out.count(frames.DELIMITER) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([Side.MASTER, Side.ROBOT]),
    st.booleans(),
    st.lists(
        st.tuples(
            st.integers(0, 3),  # version: mostly wrong ones are rare on a real line
            st.sampled_from(sorted(wire.message_types()) + [0x00, 0x7F, 0xFF]),
            st.integers(0, 0xFFFF),
            st.binary(max_size=40),
        ),
        max_size=30,
    ),
)
def test_fuzz_channel_takes_any_valid_frame_without_crashing(
    side: Side, in_session: bool, specs: list[tuple[int, int, int, bytes]]
) -> None:
    """CRC-valid frames with any header and payload: the channel answers or drops, never
    raises, and only ever answers with ACK or NACK."""
    channel = Channel(side, CONFIG)
    if in_session:
        channel.start_session()
    delivered = 0
    for version, type_code, seq, payload in specs:
        for event in channel.receive(Frame(type_code, seq, payload, version), 0.0):
            assert isinstance(event, (Received, Refused))
            delivered += 1
    replies = StreamDecoder().feed(channel.take_output())
    assert {f.type for f in replies} <= {wire.Ack.TYPE, wire.Nack.TYPE}
    assert channel.counters.delivered <= delivered
