"""The bench's conformance sequence: does a robot speak docs/serial-protocol.md?

The probe is a master that can break its own rules on purpose: it writes raw frames,
withholds acknowledgements, repeats a frame with the same sequence number and goes silent,
so it cannot be built on the reliable channel (which would do all of that correctly). It
only uses the wire-format modules (frames, messages), as a firmware engineer's own bench
would.

Each check is one row of the table `fleet hil check` prints: "pass", "fail" (with what
was expected and what came), or "skip" (motion, unless the operator allows it).
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import serial

from drivers.commands import ActionKind, CellAction, InstantKind, Step
from drivers.serial import frames
from drivers.serial import messages as wire
from drivers.serial.frames import Frame, StreamDecoder
from drivers.serial.messages import NackReason
from maps.model import Cell, Heading

#: Wire timing the probe asks for in its HELLO (the protocol's defaults).
WATCHDOG_MS = 1000
STATUS_MS = 200
#: The robot's own retransmission timeout is at most this (section 5.4 default, with slack).
ROBOT_ACK_TIMEOUT = 0.25


@dataclass
class Check:
    name: str
    status: str  # pass, fail, skip
    detail: str
    seconds: float = 0.0


@dataclass
class Report:
    port: str
    robot_id: str | None
    identity: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    line: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status != "fail" for c in self.checks)

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        rows = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
        rows += [f"{c.name:<{width}}  {c.status.upper():<6}  {c.detail}" for c in self.checks]
        verdict = "PASS" if self.passed else "FAIL"
        failed = sum(c.status == "fail" for c in self.checks)
        rows.append(f"{verdict}: {len(self.checks) - failed} of {len(self.checks)} checks did not fail")
        return "\n".join(rows)


@dataclass(frozen=True)
class Heard:
    at: float
    frame: Frame
    wire: bytes


class Probe:
    """A deliberately imperfect master on one port, with a reader thread."""

    def __init__(self, url: str, baudrate: int = 115200, tap: Callable[[str, bytes], None] | None = None) -> None:
        self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.01, write_timeout=1.0)
        self.port.reset_input_buffer()  # whatever a previous session left in the line
        self.tap = tap
        self.decoder = StreamDecoder()
        self.heard: list[Heard] = []
        self.cond = threading.Condition()
        self.tx_seq = 1
        self.silent = False  # no heartbeats, no acks: the master has gone quiet
        self.hold_acks = False  # do not acknowledge the robot's events
        self.last_sent = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hil probe", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
        self.port.close()

    # --- writing -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self._lock:
            self.port.write(data)
            self.last_sent = time.monotonic()
        if self.tap is not None:
            self.tap("tx", data)

    def frame(self, message: wire.Message, seq: int | None = None) -> tuple[int, bytes]:
        """The wire bytes of `message`, sequenced with the next seq unless told otherwise."""
        if seq is None:
            seq = self.next_seq() if message.RELIABLE else 0
        return seq, frames.encode(Frame(message.TYPE, seq, wire.encode(message)))

    def send(self, message: wire.Message) -> tuple[int, bytes]:
        seq, data = self.frame(message)
        self.write(data)
        return seq, data

    def next_seq(self) -> int:
        seq = self.tx_seq
        self.tx_seq = seq % 0xFFFF + 1
        return seq

    # --- reading -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError):
                if self._closed.wait(0.05):
                    return
                continue
            now = time.monotonic()
            if data and self.tap is not None:
                self.tap("rx", data)
            for frame in self.decoder.feed(data):
                self._heard(Heard(now, frame, frames.encode(frame)))
            if not self.silent and now - self.last_sent >= 0.2:
                self.write(self.frame(wire.Heartbeat())[1])

    def _heard(self, heard: Heard) -> None:
        frame = heard.frame
        with self.cond:
            self.heard.append(heard)
            self.cond.notify_all()
        cls = wire.message_types().get(frame.type)
        if cls is None or not cls.RELIABLE or frame.seq == 0 or self.silent or self.hold_acks:
            return
        # Acknowledge whatever comes, repeats included: the bench judges the robot's
        # sequencing in its own checks, and must not fall out of step with a robot that
        # gave up an event while the probe was silent on purpose.
        self.write(frames.encode(Frame(wire.Ack.TYPE, frame.seq)))

    def mark(self) -> int:
        with self.cond:
            return len(self.heard)

    def wait(self, match: Callable[[Heard], bool], timeout: float, since: int = 0) -> Heard | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for heard in self.heard[since:]:
                    if match(heard):
                        return heard
                since = len(self.heard)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def since(self, mark: int) -> list[Heard]:
        with self.cond:
            return list(self.heard[mark:])

    def acknowledge(self, seq: int) -> None:
        """Answer one of the robot's events by hand (after holding acks)."""
        self.write(frames.encode(Frame(wire.Ack.TYPE, seq)))


def message_of(heard: Heard) -> wire.Message | None:
    try:
        return wire.decode(heard.frame.type, heard.frame.payload)
    except wire.MessageError:
        return None


def is_a(cls: type[wire.Message], test: Callable[[wire.Message], bool] = lambda m: True) -> Callable[[Heard], bool]:
    def match(heard: Heard) -> bool:
        message = message_of(heard)
        return isinstance(message, cls) and test(message)

    return match


def answer(kind: type[wire.Message], seq: int) -> Callable[[Heard], bool]:
    """The ACK or NACK answering `seq`."""
    return lambda h: h.frame.type in (wire.Ack.TYPE, wire.Nack.TYPE) and h.frame.seq == seq and (
        h.frame.type == kind.TYPE
    )


class Bench:
    """The conformance sequence against one robot."""

    def __init__(
        self,
        url: str,
        robot_id: str | None = None,
        allow_motion: bool = False,
        shelf_id: str | None = None,
        pose: tuple[Cell, Heading] | None = None,
        baudrate: int = 115200,
        tap: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.url = url
        self.robot_id = robot_id
        self.allow_motion = allow_motion
        self.shelf_id = shelf_id
        self.pose = pose
        self.baudrate = baudrate
        self.tap = tap
        self.report = Report(url, robot_id)
        self.probe: Probe | None = None

    def run(self) -> Report:
        try:
            self.probe = Probe(self.url, self.baudrate, self.tap)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.report.checks.append(Check("open port", "fail", f"cannot open {self.url}: {exc}"))
            return self.report
        try:
            session = True
            for name, step in self._sequence():
                if not session:
                    self.report.checks.append(Check(name, "fail", "not run: no session (handshake failed)"))
                    continue
                started = time.monotonic()
                try:
                    status, detail = step()
                except (serial.SerialException, OSError) as exc:
                    status, detail = "fail", f"the port failed: {exc}"
                self.report.checks.append(Check(name, status, detail, round(time.monotonic() - started, 3)))
                # Nothing else can be asked of a robot without a session.
                session = not (name == "handshake" and status == "fail")
            self.report.line = asdict(self.probe.decoder.counters)
        finally:
            self.probe.close()
        return self.report

    def _sequence(self) -> Iterator[tuple[str, Callable[[], tuple[str, str]]]]:
        yield "handshake", self.handshake
        yield "status rate", self.status_rate
        yield "initialise on a code", self.initialise
        yield "retransmission of an unacked event", self.robot_retransmits
        yield "duplicate after a lost ack", self.duplicate_suppressed
        yield "nack unknown type", lambda: self.refusal(
            lambda seq: frames.encode(Frame(0x7F, seq)), True, NackReason.UNKNOWN_TYPE)
        yield "nack bad value", lambda: self.refusal(self._bad_heading, True, NackReason.BAD_VALUE)
        yield "nack bad length", lambda: self.refusal(
            lambda seq: frames.encode(Frame(wire.Instant.TYPE, seq, bytes([1]))), True, NackReason.BAD_LENGTH)
        yield "nack unsupported version", lambda: self.refusal(
            lambda seq: frames.encode(Frame(wire.Heartbeat.TYPE, 0, b"", version=2)), False,
            NackReason.UNSUPPORTED_VERSION)
        yield "bad crc ignored and counted", self.bad_crc
        yield "job: turn, lift, lower", self.job
        yield "watchdog stop", self.watchdog

    # --- the checks --------------------------------------------------------------------

    @property
    def _p(self) -> Probe:
        assert self.probe is not None
        return self.probe

    def handshake(self) -> tuple[str, str]:
        p = self._p
        nonce = secrets.randbits(32)
        hello = p.frame(wire.Hello(nonce, WATCHDOG_MS, STATUS_MS))[1]
        mark = p.mark()
        deadline = time.monotonic() + 3.0
        found = None
        while found is None and time.monotonic() < deadline:
            p.write(hello)
            found = p.wait(is_a(wire.Identity, lambda m: m.nonce == nonce), 0.25, mark)
        if found is None:
            heard = p.since(mark)
            rejected = {k: v for k, v in asdict(p.decoder.counters).items() if v and k != "frames"}
            return "fail", (f"no IDENTITY with nonce {nonce:#010x} within 3 s: {len(heard)} valid frames heard, "
                            f"rejected {rejected or 'none'}")
        identity = message_of(found)
        assert isinstance(identity, wire.Identity)
        self.report.identity = {
            "robot_id": identity.robot_id, "firmware": identity.firmware,
            "capabilities": identity.capabilities, "max_payload": identity.max_payload,
            "version": found.frame.version,
        }
        problems = []
        if found.frame.version != frames.VERSION:
            problems.append(f"version {found.frame.version}, expected {frames.VERSION}")
        if self.robot_id is not None and identity.robot_id != self.robot_id:
            problems.append(f"robot id {identity.robot_id!r}, expected {self.robot_id!r}")
        if identity.max_payload < frames.MAX_PAYLOAD:
            problems.append(f"max payload {identity.max_payload} < {frames.MAX_PAYLOAD}")
        if self.robot_id is None:
            self.robot_id = self.report.robot_id = identity.robot_id
        detail = (f"robot {identity.robot_id!r}, firmware {identity.firmware!r}, version {found.frame.version}, "
                  f"capabilities {identity.capabilities:#06x}")
        return ("fail", "; ".join(problems)) if problems else ("pass", detail)

    def _statuses(self, seconds: float) -> list[tuple[float, wire.Status]]:
        mark = self._p.mark()
        time.sleep(seconds)
        return [(h.at, m) for h in self._p.since(mark) if isinstance(m := message_of(h), wire.Status)]

    def _status(self, test: Callable[[wire.Status], bool], timeout: float) -> wire.Status | None:
        found = self._p.wait(is_a(wire.Status, test), timeout, self._p.mark())
        return message_of(found) if found else None  # type: ignore[return-value]

    def status_rate(self) -> tuple[str, str]:
        statuses = self._statuses(2.0)
        if len(statuses) < 3:
            return "fail", f"{len(statuses)} STATUS frames in 2 s, asked for one every {STATUS_MS} ms"
        gaps = [b[0] - a[0] for a, b in zip(statuses, statuses[1:])]
        median = statistics.median(gaps) * 1000
        uptimes = [s.uptime_ms for _, s in statuses]
        rising = all(0 < (b - a) % 2**32 < 2**31 for a, b in zip(uptimes, uptimes[1:]))
        detail = f"{len(statuses)} in 2 s, median interval {median:.0f} ms (asked {STATUS_MS})"
        if not abs(median - STATUS_MS) <= 0.25 * STATUS_MS:
            return "fail", detail
        if not rising:
            return "fail", detail + "; uptime does not increase with every STATUS"
        return "pass", detail

    def initialise(self) -> tuple[str, str]:
        p = self._p
        if self.pose is None:
            status = self._status(lambda s: True, 1.0)
            if status is None or status.cell is None or status.heading is None:
                return "fail", "the robot does not know where it stands: give --cell X,Y and --heading"
            self.pose = (status.cell, status.heading)
        cell, heading = self.pose
        p.hold_acks = True  # the CELL_REACHED that confirms it is the next check's subject
        mark = p.mark()
        self._set_pose = p.send(wire.SetPose(cell, heading, "hil-init"))
        seq = self._set_pose[0]
        ack = p.wait(answer(wire.Ack, seq), 1.0, mark)
        if ack is None:
            nack = p.wait(answer(wire.Nack, seq), 0.0, mark)
            return "fail", f"SET_POSE seq {seq} not acknowledged" + (f": {message_of(nack)}" if nack else "")
        self._set_pose_ack = ack.wire
        self._reached = p.wait(is_a(wire.CellReached, lambda m: m.cell == cell), 2.0, mark)
        if self._reached is None:
            return "fail", f"no CELL_REACHED {cell.x},{cell.y} within 2 s of SET_POSE"
        return "pass", f"on ({cell.x}, {cell.y}) facing {heading.name}: ACK, then CELL_REACHED"

    def robot_retransmits(self) -> tuple[str, str]:
        p = self._p
        first = getattr(self, "_reached", None)
        if first is None:
            p.hold_acks = False
            return "fail", "no unacknowledged CELL_REACHED to watch (initialise failed)"
        again = p.wait(lambda h: h.wire == first.wire and h.at > first.at, 4 * ROBOT_ACK_TIMEOUT, 0)
        p.hold_acks = False
        p.acknowledge(first.frame.seq)
        if again is None:
            return "fail", f"CELL_REACHED seq {first.frame.seq} not sent again within {4 * ROBOT_ACK_TIMEOUT:.1f} s unacknowledged"
        return "pass", f"same bytes again after {1000 * (again.at - first.at):.0f} ms"

    def duplicate_suppressed(self) -> tuple[str, str]:
        p = self._p
        if not hasattr(self, "_set_pose_ack"):
            return "fail", "no acknowledged SET_POSE to repeat (initialise failed)"
        seq, data = self._set_pose
        time.sleep(0.3)  # let the retransmissions of the last check settle
        mark = p.mark()
        p.write(data)  # as if the ACK had been lost
        ack = p.wait(answer(wire.Ack, seq), 1.0, mark)
        if ack is None:
            return "fail", f"repeated SET_POSE seq {seq} not answered"
        if ack.wire != self._set_pose_ack:
            return "fail", f"repeated SET_POSE answered with {ack.wire.hex(' ')}, first answer was {self._set_pose_ack.hex(' ')}"
        time.sleep(0.5)
        again = [h for h in p.since(mark) if is_a(wire.CellReached)(h)]
        if again:
            return "fail", "the repeat was delivered again: a second CELL_REACHED followed"
        return "pass", "same ACK again, nothing delivered twice"

    def _bad_heading(self, seq: int) -> bytes:
        cell = self.pose[0] if self.pose else Cell(0, 0)
        payload = bytearray(wire.encode(wire.SetPose(cell, Heading.EAST, "")))
        payload[4] = 7
        return frames.encode(Frame(wire.SetPose.TYPE, seq, bytes(payload)))

    def refusal(self, build: Callable[[int], bytes], sequenced: bool, reason: NackReason) -> tuple[str, str]:
        p = self._p
        seq = p.next_seq() if sequenced else 0
        mark = p.mark()
        p.write(build(seq))
        found = p.wait(lambda h: h.frame.type in (wire.Ack.TYPE, wire.Nack.TYPE) and h.frame.seq == seq, 1.0, mark)
        if found is None:
            return "fail", f"no answer with seq {seq} within 1 s, expected NACK {reason.name}"
        message = message_of(found)
        if not isinstance(message, wire.Nack) or message.reason is not reason:
            got = message.reason.name if isinstance(message, wire.Nack) else type(message).__name__.upper()
            return "fail", f"answered {got}, expected NACK {reason.name}"
        return "pass", f"NACK {reason.name} seq {seq}"

    def bad_crc(self) -> tuple[str, str]:
        p = self._p
        before = self._status(lambda s: True, 1.0)
        if before is None:
            return "fail", "no STATUS to read rx_rejected from"
        seq = p.next_seq()
        good = bytearray(frames.body(Frame(wire.Instant.TYPE, seq, wire.encode(wire.Instant(InstantKind.STATUS)))))
        good[-1] ^= 0xFF
        mark = p.mark()
        p.write(frames.cobs.encode(bytes(good)) + frames.DELIMITER)
        answered = p.wait(lambda h: h.frame.type in (wire.Ack.TYPE, wire.Nack.TYPE) and h.frame.seq == seq, 0.6, mark)
        p.tx_seq = seq  # the robot never saw that seq: use it again
        if answered is not None:
            return "fail", f"a frame with a bad CRC was answered: {message_of(answered)}"
        after = self._status(lambda s: (s.rx_rejected - before.rx_rejected) % 2**16 >= 1, 1.0)
        if after is None:
            return "fail", f"rx_rejected stayed at {before.rx_rejected} in STATUS"
        return "pass", f"no answer; rx_rejected {before.rx_rejected} -> {after.rx_rejected}"

    def job(self) -> tuple[str, str]:
        if not self.allow_motion:
            return "skip", "the robot would move: pass --allow-motion"
        if self.pose is None:
            return "fail", "position unknown (initialise failed)"
        p = self._p
        cell, heading = self.pose
        shelf = self.shelf_id
        steps = (
            Step(cell),
            Step(cell, heading.left()),
            Step(cell, None, (CellAction("hil-lift", ActionKind.LIFT, shelf), CellAction("hil-lower", ActionKind.LOWER, shelf))),
            Step(cell, heading),
        )
        job_id = f"hil-{secrets.token_hex(3)}"
        mark = p.mark()
        seq, _ = p.send(wire.NewJob(job_id, steps))
        if p.wait(answer(wire.Ack, seq), 1.0, mark) is None:
            return "fail", "NEW_JOB not acknowledged"
        end = p.wait(is_a((wire.JobFinished, wire.JobRejected, wire.ActionFailed), lambda m: True), 30.0, mark)  # type: ignore[arg-type]
        heard = [m for h in p.since(mark) if (m := message_of(h)) is not None and not isinstance(m, (wire.Status, wire.Ack))]
        if end is None:
            return "fail", f"job {job_id} not finished within 30 s"
        if not isinstance(message_of(end), wire.JobFinished):
            return "fail", f"{message_of(end)}"
        done = [m.kind for m in heard if isinstance(m, wire.ActionFinished)]
        loads = [m.shelf_id for m in heard if isinstance(m, wire.LoadChanged)]
        if done != [ActionKind.LIFT, ActionKind.LOWER] or len(loads) != 2 or loads[1] is not None:
            return "fail", f"actions finished {[k.name for k in done]}, load changes {loads}"
        status = self._status(lambda s: True, 1.0)
        if status is None or status.heading is not heading:
            return "fail", f"facing {status.heading if status else '?'} after the job, expected {heading.name}"
        return "pass", f"turned {heading.left().name} and back, lifted and lowered {loads[0]!r}"

    def watchdog(self) -> tuple[str, str]:
        p = self._p
        p.silent = True
        silent_from = p.last_sent
        stopped = self._status(lambda s: s.paused and not s.driving and "watchdog" in s.errors,
                               WATCHDOG_MS / 1000 + 1.5)
        stopped_after = time.monotonic() - silent_from
        raised = [m for h in p.since(0) if isinstance(m := message_of(h), wire.ErrorRaised) and m.code == "watchdog"]
        p.silent = False
        if stopped is None:
            return "fail", (f"still not paused with error 'watchdog' {stopped_after:.1f} s after the master went silent "
                            f"(watchdog {WATCHDOG_MS} ms)")
        mark = p.mark()
        cleared = p.wait(is_a(wire.ErrorCleared, lambda m: m.code == "watchdog"), 1.5, mark)
        still = self._status(lambda s: True, 1.0)
        seq, _ = p.send(wire.Instant(InstantKind.RESUME, "hil-resume"))
        resumed = self._status(lambda s: not s.paused, 1.5)
        detail = f"stopped {stopped_after:.2f} s after the last frame (watchdog {WATCHDOG_MS} ms)"
        if not raised:
            return "fail", detail + "; no ERROR_RAISED 'watchdog'"
        if cleared is None:
            return "fail", detail + "; no ERROR_CLEARED 'watchdog' once the master spoke again"
        if still is None or not still.paused:
            return "fail", detail + "; drove on before RESUME"
        if resumed is None:
            return "fail", detail + "; still paused after RESUME"
        return "pass", detail + "; cleared on return, paused until RESUME"
