"""The robot's side of a serial port: handshake, status cadence and the watchdog.

This is the protocol as a robot must speak it, for the firmware emulator's serial front
end and for test benches. The firmware (emulated or a bench double) only sees decoded
commands, delivered once and in order, and is asked for its status and told when the
master has gone quiet; everything about frames, sequence numbers and sessions stays here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable, ContextManager, Protocol

from drivers.serial.channel import (
    Channel,
    ChannelConfig,
    ChannelEvent,
    Received,
    Refused,
    Undelivered,
)
from drivers.serial.messages import Heartbeat, Hello, Identity, Message, Side, Status
from drivers.serial.port import PortSettings, SerialPort

log = logging.getLogger(__name__)

#: A STATUS waits for unacknowledged events at most this many status intervals.
STATUS_HOLD = 3


class Firmware(Protocol):
    def command(self, message: Message) -> None:
        """SET_POSE, NEW_JOB, EXTEND_JOB or INSTANT, exactly once each, in order."""

    def status(self) -> Status:
        """A snapshot for the periodic STATUS frame (the endpoint fills in rx_rejected)."""

    def watchdog_expired(self) -> None:
        """The master has been silent for the watchdog time: stop safely now."""

    def watchdog_fed(self) -> None:
        """Frames from the master arrive again after a watchdog stop."""


class RobotEndpoint:
    def __init__(
        self,
        settings: PortSettings,
        firmware: Firmware,
        robot_id: str,
        firmware_version: str = "",
        capabilities: int = 0b111,
        max_payload: int = 500,
        config: ChannelConfig = ChannelConfig(),
        monotonic: Callable[[], float] = time.monotonic,
        status_lock: ContextManager[Any] | None = None,
    ) -> None:
        """`status_lock`, if given, is held while a STATUS is sampled and queued: the lock
        under which the firmware's other threads send events, so that no event reflecting
        a newer state can be written ahead of a STATUS sampled before it."""
        self.firmware = firmware
        self.status_lock = status_lock if status_lock is not None else contextlib.nullcontext()
        self.robot_id = robot_id
        self.firmware_version = firmware_version
        self.capabilities = capabilities
        self.max_payload = max_payload
        self.port = SerialPort(
            settings, Side.ROBOT, self, config, monotonic, name=f"robot {robot_id}"
        )
        self.nonce: int | None = None
        self.watchdog: float | None = None
        self.status_interval: float | None = None
        self.watchdog_tripped = False
        self._last_status: float | None = None

    def start(self) -> None:
        self.port.start()

    def close(self) -> None:
        self.port.close()

    def send(self, event: Message) -> None:
        """Report an event (CELL_REACHED, JOB_FINISHED, ...): sequenced and acknowledged."""
        self.port.send(event)

    # --- PortListener ------------------------------------------------------------------

    def port_opened(self, port: SerialPort) -> None:
        log.info("%s: port open", port.name)

    def port_closed(self, port: SerialPort, reason: str) -> None:
        log.info("%s: port closed: %s", port.name, reason)

    def channel_event(self, port: SerialPort, event: ChannelEvent) -> None:
        if isinstance(event, Received):
            if isinstance(event.message, Hello):
                self._hello(event.message)
            elif not isinstance(event.message, Heartbeat):
                self.firmware.command(event.message)
        elif isinstance(event, (Refused, Undelivered)):
            log.warning("%s: master did not take %s", port.name, event)

    def tick(self, port: SerialPort, now: float) -> None:
        channel = port.channel
        if not channel.in_session or self.watchdog is None or channel.last_heard is None:
            return
        silent = now - channel.last_heard > self.watchdog
        if silent and not self.watchdog_tripped:
            self.watchdog_tripped = True
            self.firmware.watchdog_expired()
        elif not silent and self.watchdog_tripped:
            self.watchdog_tripped = False
            self.firmware.watchdog_fed()
        assert self.status_interval is not None
        due = self._last_status is None or now - self._last_status >= self.status_interval
        # Events waiting for their ACK describe older states than a STATUS sampled now;
        # sent first, that STATUS would run ahead of them (docs/serial-protocol.md, STATUS).
        # Held back only so long: STATUS is also the robot's heartbeat.
        overdue = self._last_status is None or now - self._last_status >= STATUS_HOLD * self.status_interval
        if due and (not channel.busy or overdue):
            self._last_status = now
            # The line's figures are the endpoint's to know, not the firmware's.
            rejected = port.decoder.counters.rejected & 0xFFFF
            with self.status_lock:
                port.send(dataclasses.replace(self.firmware.status(), rx_rejected=rejected))

    def _hello(self, hello: Hello) -> None:
        """A new nonce starts a new session; a repeated one only repeats the answer."""
        identity = Identity(
            hello.nonce, self.robot_id, self.firmware_version, self.capabilities, self.max_payload
        )
        if hello.nonce == self.nonce:
            self.port.send(identity)
            return
        self.nonce = hello.nonce
        self.watchdog = hello.watchdog_ms / 1000
        self.status_interval = hello.status_interval_ms / 1000
        self._last_status = None

        def open_session(channel: Channel, now: float) -> None:
            # One step under the port lock: no event from another thread can slip in
            # between, and reach the master ahead of the IDENTITY that opens its session.
            channel.start_session()
            channel.send(identity, now)

        self.port.with_channel(open_session)
