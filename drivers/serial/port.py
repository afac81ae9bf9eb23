"""A serial port driven by one thread: bytes in -> frames -> channel; timers -> bytes out.

pyserial's serial_for_url gives one interface over a device (/dev/ttyUSB0), a
pseudo-terminal path, socket://host:port (a terminal server), rfc2217:// and loop://, so
nothing above this module knows which of them carries the bytes.

One thread per port owns reading and timing; send() may be called from any thread. The
channel and the write side are guarded by one lock, and listener callbacks run on the
port's thread *outside* that lock, so a listener may call send() freely.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping, Protocol

import serial

from drivers.serial.channel import Channel, ChannelConfig, ChannelEvent
from drivers.serial.frames import StreamDecoder
from drivers.serial.messages import Message, Side

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortSettings:
    """Where and how to open the line. `options` go to serial_for_url as they are
    (bytesize, parity, stopbits, rtscts, xonxoff, ...), so anything pyserial knows works."""

    url: str
    baudrate: int = 115200
    options: Mapping[str, Any] = field(default_factory=dict)
    #: How long one read waits for bytes: the granularity of the port's timers.
    read_timeout: float = 0.01
    #: Bounds a write on a stalled line (flow control held). None: no bound, for
    #: transports that cannot honour one (pyserial's rfc2217:// refuses a write timeout).
    write_timeout: float | None = 1.0
    #: Seconds between attempts to reopen a port that failed or vanished.
    reopen_interval: float = 0.5

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("a serial port needs a URL or device path")
        if self.baudrate <= 0:
            raise ValueError(f"baud rate must be positive, got {self.baudrate}")
        if self.read_timeout <= 0 or self.reopen_interval <= 0:
            raise ValueError("read_timeout and reopen_interval must be positive")


class PortListener(Protocol):
    """What the owner of a port (the master link or a robot endpoint) is told."""

    def port_opened(self, port: "SerialPort") -> None: ...

    def port_closed(self, port: "SerialPort", reason: str) -> None: ...

    def channel_event(self, port: "SerialPort", event: ChannelEvent) -> None: ...

    def tick(self, port: "SerialPort", now: float) -> None: ...


class SerialPort:
    def __init__(
        self,
        settings: PortSettings,
        side: Side,
        listener: PortListener,
        config: ChannelConfig = ChannelConfig(),
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.channel = Channel(side, config)
        self.decoder = StreamDecoder()
        self.monotonic = monotonic
        self.name = name or settings.url
        self._serial: serial.SerialBase | None = None
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the port and start its thread.

        A URL pyserial cannot understand (unknown scheme, bad option) is the caller's
        mistake and raises here; a device that is absent or busy is the world's, and the
        thread keeps trying to open it, reporting port_closed meanwhile.
        """
        try:
            self._open()
        except serial.SerialException as exc:
            self._report_closed(f"cannot open {self.settings.url}: {exc}")
        self._thread = threading.Thread(target=self._run, name=f"serial {self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self._lock:
            self._drop_serial()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def send(self, message: Message, urgent: bool = False) -> None:
        with self._lock:
            self.channel.send(message, self.monotonic(), urgent)
            self._flush()

    def write_raw(self, data: bytes) -> None:
        """Bytes straight onto the line, bypassing framing: for benches that test how a
        peer copes with malformed input."""
        with self._lock:
            self._write(data)

    def with_channel(self, action: Callable[[Channel, float], Any]) -> Any:
        """Run `action(channel, now)` under the port lock and write what it produced."""
        with self._lock:
            result = action(self.channel, self.monotonic())
            self._flush()
            return result

    # --- the port's thread -------------------------------------------------------------

    def _open(self) -> None:
        s = self.settings
        port = serial.serial_for_url(
            s.url,
            baudrate=s.baudrate,
            timeout=s.read_timeout,
            write_timeout=s.write_timeout,
            do_not_open=True,
            **dict(s.options),
        )
        try:
            port.open()
        except NotImplementedError as exc:
            port.close()
            raise ValueError(f"{s.url}: {exc}; set PortSettings(write_timeout=None)") from None
        with self._lock:
            self._serial = port
        self.listener.port_opened(self)

    def _run(self) -> None:
        while not self._closed.is_set():
            if self._serial is None:
                if self._closed.wait(self.settings.reopen_interval):
                    break
                try:
                    self._open()
                except (serial.SerialException, OSError, ValueError) as exc:
                    log.debug("%s: still cannot open: %s", self.name, exc)
                    self.listener.tick(self, self.monotonic())
                continue
            try:
                self._cycle()
            except (serial.SerialException, OSError) as exc:
                with self._lock:
                    self._drop_serial()
                self._report_closed(f"{self.settings.url}: {exc}")
            except Exception:
                # A failing listener must not end the only thread that reads this line:
                # the peer would then look alive to nobody, and nothing would say why.
                log.exception("%s: listener failed; the port carries on", self.name)

    def _cycle(self) -> None:
        port = self._serial
        assert port is not None
        data = port.read(max(1, port.in_waiting))
        now = self.monotonic()
        with self._lock:
            frames = self.decoder.feed(data)
        # One frame at a time, its events handled before the next frame: IDENTITY opens
        # the session that the robot's next frame, maybe in the same read, relies on.
        for frame in frames:
            self._dispatch(partial(self.channel.receive, frame, now))
        self._dispatch(partial(self.channel.poll, now))
        self.listener.tick(self, now)

    def _dispatch(self, step: Callable[[], list[ChannelEvent]]) -> None:
        with self._lock:
            events = step()
            self._flush()
        for event in events:
            self.listener.channel_event(self, event)

    def _flush(self) -> None:
        out = self.channel.take_output()
        if out:
            self._write(out)

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            return  # the line is down; retransmission or the next session covers it
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            # Reported by the reader thread when its next read fails the same way.
            log.debug("%s: write failed: %s", self.name, exc)

    def _drop_serial(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None

    def _report_closed(self, reason: str) -> None:
        log.info("%s: port closed: %s", self.name, reason)
        self.listener.port_closed(self, reason)
