"""The reliable channel: sequence numbers, acknowledgements, retransmission, duplicates.

It is sans-IO: it never touches a port or reads a clock. Frames go in with the time they
arrived, bytes to write come out, and timers advance when poll(now) is called. That keeps
the protocol rules testable to the millisecond without threads, and lets the master
(drivers/serial/link.py) and the robot side (drivers/serial/robot.py) share one
implementation of them.

The rules (docs/serial-protocol.md, "Reliability"): stop-and-wait, one sequenced frame in
flight per direction; seq 0 marks an unsequenced frame, sequenced frames count 1..65535 and
wrap to 1; the receiver delivers seq == expected once, re-answers a repeat of the last seq
with the same reply, and drops anything else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from drivers.serial import frames, messages
from drivers.serial.frames import Frame
from drivers.serial.messages import Ack, Message, MessageError, Nack, NackReason, Side


@dataclass(frozen=True)
class ChannelConfig:
    #: Seconds without an answer before a sequenced frame is sent again.
    ack_timeout: float = 0.25
    #: Retransmissions before the frame is given up (and the peer presumed lost).
    max_retries: int = 8

    def __post_init__(self) -> None:
        if self.ack_timeout <= 0:
            raise ValueError(f"ack_timeout must be positive, got {self.ack_timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class Received:
    """A message from the peer, delivered exactly once and in order."""

    message: Message


@dataclass(frozen=True)
class Refused:
    """The peer answered one of our sequenced messages with a NACK."""

    message: Message
    reason: NackReason


@dataclass(frozen=True)
class Undelivered:
    """No answer after max_retries retransmissions: the peer is deaf, gone or out of step."""

    message: Message


ChannelEvent = Received | Refused | Undelivered


@dataclass
class ChannelCounters:
    sent: int = 0  # sequenced frames sent (first transmissions)
    retransmitted: int = 0
    delivered: int = 0  # sequenced frames received and delivered
    duplicates: int = 0  # repeats of the last delivered frame, answered again
    out_of_sequence: int = 0  # sequenced frames neither expected nor the last one
    malformed: int = 0  # CRC-valid frames that failed to decode (answered with NACK)
    refused: int = 0  # NACKs received for our frames
    undelivered: int = 0
    stray_answers: int = 0  # ACK/NACK for a frame not in flight (late or duplicated)


@dataclass
class _InFlight:
    message: Message
    seq: int
    wire: bytes
    sent_at: float
    retries: int = 0


def next_seq(seq: int) -> int:
    return seq % 0xFFFF + 1


def previous_seq(seq: int) -> int:
    return (seq - 2) % 0xFFFF + 1


class Channel:
    def __init__(self, side: Side, config: ChannelConfig = ChannelConfig()) -> None:
        self.side = side
        self.config = config
        self.counters = ChannelCounters()
        self.in_session = False
        #: Time the last valid frame arrived: what the watchdog and lost detection watch.
        self.last_heard: float | None = None
        #: Time the last frame of any kind was written: what the heartbeat watches.
        self.last_sent: float | None = None
        self._pending: deque[Message] = deque()
        self._in_flight: _InFlight | None = None
        self._tx_seq = 1
        self._rx_expected = 1
        self._last_reply: bytes | None = None
        self._output = bytearray()

    # --- session ---------------------------------------------------------------------

    def start_session(self) -> list[Message]:
        """Restart both sequence counters (after a HELLO); return what was left unsent."""
        dropped = self.end_session()
        self.in_session = True
        return dropped

    def end_session(self) -> list[Message]:
        dropped = ([self._in_flight.message] if self._in_flight else []) + list(self._pending)
        self._pending.clear()
        self._in_flight = None
        self._tx_seq = 1
        self._rx_expected = 1
        self._last_reply = None
        self.in_session = False
        return dropped

    @property
    def busy(self) -> bool:
        """A sequenced message is waiting or in flight."""
        return self._in_flight is not None or bool(self._pending)

    # --- sending ---------------------------------------------------------------------

    def send(self, message: Message, now: float, urgent: bool = False) -> None:
        """Queue a message. Sequenced ones wait their turn (urgent ones go first in line)."""
        if not message.RELIABLE:
            self._write(Frame(message.TYPE, 0, messages.encode(message)), now)
            return
        messages.encode(message)  # refuse what cannot be carried now, not at send time
        if urgent:
            self._pending.appendleft(message)
        else:
            self._pending.append(message)
        self._pump(now)

    def take_output(self) -> bytes:
        out = bytes(self._output)
        self._output.clear()
        return out

    def _write(self, frame: Frame, now: float) -> bytes:
        wire = frames.encode(frame)
        self._output += wire
        self.last_sent = now
        return wire

    def _pump(self, now: float) -> None:
        if self._in_flight is not None or not self._pending or not self.in_session:
            return
        message = self._pending.popleft()
        seq = self._tx_seq
        self._tx_seq = next_seq(seq)
        wire = self._write(Frame(message.TYPE, seq, messages.encode(message)), now)
        self._in_flight = _InFlight(message, seq, wire, now)
        self.counters.sent += 1

    # --- timers ----------------------------------------------------------------------

    def poll(self, now: float) -> list[ChannelEvent]:
        """Retransmit or give up the frame in flight if its answer is overdue."""
        flight = self._in_flight
        if flight is None or now - flight.sent_at < self.config.ack_timeout:
            return []
        if flight.retries >= self.config.max_retries:
            self._in_flight = None
            self.counters.undelivered += 1
            self._pump(now)
            return [Undelivered(flight.message)]
        flight.retries += 1
        flight.sent_at = now
        self._output += flight.wire
        self.last_sent = now
        self.counters.retransmitted += 1
        return []

    # --- receiving -------------------------------------------------------------------

    def receive(self, frame: Frame, now: float) -> list[ChannelEvent]:
        self.last_heard = now
        if frame.version != frames.VERSION:
            self.counters.malformed += 1
            self._answer_seq(frame.seq, Nack(NackReason.UNSUPPORTED_VERSION), now)
            return []
        try:
            message = messages.decode(frame.type, frame.payload)
            if message.SENDER == self.side:
                raise MessageError(
                    NackReason.UNKNOWN_TYPE,
                    f"{type(message).__name__} is sent by the {self.side.value}, not to it",
                )
        except MessageError as exc:
            return self._malformed(frame, exc.reason, now)
        if isinstance(message, (Ack, Nack)):
            return self._answered(frame.seq, message, now)
        if not message.RELIABLE:
            return [Received(message)]
        if frame.seq == 0:
            # Unsequenced, it would dodge duplicate suppression: refuse it.
            return self._malformed(frame, NackReason.BAD_VALUE, now)
        return self._sequenced(frame.seq, message, now)

    def _malformed(self, frame: Frame, reason: NackReason, now: float) -> list[ChannelEvent]:
        self.counters.malformed += 1
        if frame.type in (Ack.TYPE, Nack.TYPE):
            return []  # never answer an answer: two confused peers must not ping-pong
        if frame.seq == 0:
            self._answer_seq(frame.seq, Nack(reason), now)
            return []
        return self._sequenced(frame.seq, Nack(reason), now)

    def _sequenced(self, seq: int, message: Message, now: float) -> list[ChannelEvent]:
        """Apply the sequencing rule; `message` is a Nack when the frame did not decode."""
        if not self.in_session:
            self._answer_seq(seq, Nack(NackReason.NO_SESSION), now)
            return []
        if seq == self._rx_expected:
            self._rx_expected = next_seq(seq)
            if isinstance(message, Nack):
                self._last_reply = self._answer_seq(seq, message, now)
                return []
            self._last_reply = self._answer_seq(seq, Ack(), now)
            self.counters.delivered += 1
            return [Received(message)]
        if seq == previous_seq(self._rx_expected) and self._last_reply is not None:
            self.counters.duplicates += 1
            self._output += self._last_reply
            self.last_sent = now
            return []
        self.counters.out_of_sequence += 1
        return []

    def _answer_seq(self, seq: int, reply: Message, now: float) -> bytes:
        return self._write(Frame(reply.TYPE, seq, messages.encode(reply)), now)

    def _answered(self, seq: int, answer: Ack | Nack, now: float) -> list[ChannelEvent]:
        flight = self._in_flight
        if flight is None or seq != flight.seq:
            self.counters.stray_answers += 1
            return []
        self._in_flight = None
        self._pump(now)
        if isinstance(answer, Nack):
            self.counters.refused += 1
            return [Refused(flight.message, answer.reason)]
        return []
