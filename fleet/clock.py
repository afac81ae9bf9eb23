"""Time as a parameter.

The core never reads the system time itself: it is handed a clock. The service passes a
WallClock; tests, simulations and benchmarks pass a SimulatedClock, which only moves when
told to, so runs are fast and a seeded run is reproducible to the last event.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock's epoch."""
        ...


class WallClock:
    """Real time, measured from construction, optionally sped up for demos.

    Made with `running=False` it reads 0 until `start()`: `fleet demo` builds its robots
    and the service on the clock they share, and its fleet time begins only once all is
    up, so that at 50x a second of setting up is not 50 s of robots standing idle."""

    def __init__(self, speed: float = 1.0, *, running: bool = True) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = speed
        self._start: float | None = time.monotonic() if running else None

    def start(self) -> None:
        if self._start is None:
            self._start = time.monotonic()

    def now(self) -> float:
        if self._start is None:
            return 0.0
        return (time.monotonic() - self._start) * self.speed


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class SimulatedClock:
    """A discrete-event clock: time jumps from one scheduled callback to the next.

    Ties are broken by scheduling order, never by object identity, so two runs with
    the same seed execute their events in the same order.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._queue: list[_Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, due: float, callback: Callable[[], None]) -> _Timer:
        if due < self._now:
            raise ValueError(f"cannot schedule in the past: {due} < now {self._now}")
        timer = _Timer(due, next(self._seq), callback)
        heapq.heappush(self._queue, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        return self.call_at(self._now + delay, callback)

    @staticmethod
    def cancel(timer: _Timer) -> None:
        timer.cancelled = True

    def advance_to(self, until: float) -> int:
        """Run every callback due up to `until`, then set the time to `until`.

        Returns how many callbacks ran. Callbacks may schedule more callbacks; those
        due before `until` run in this same call.
        """
        if until < self._now:
            raise ValueError(f"time cannot go backwards: {until} < now {self._now}")
        ran = 0
        while self._queue and self._queue[0].due <= until:
            timer = heapq.heappop(self._queue)
            if timer.cancelled:
                continue
            self._now = timer.due
            timer.callback()
            ran += 1
        self._now = until
        return ran

    def advance(self, delta: float) -> int:
        return self.advance_to(self._now + delta)

    def next_due(self) -> float | None:
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].due if self._queue else None
