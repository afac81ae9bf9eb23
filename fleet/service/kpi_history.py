"""What the console's KPI charts draw: lines worked per station and robots by state, one
sample per `interval_s` of fleet time, the last `keep` samples kept.

The service runs for weeks, so the history is a ring of fixed size: each sample is a
tuple of one count per state and one per station, and the oldest sample drops out when a
new one comes. It is taken on the loop thread at the end of a control cycle (where the
station views are published), from the scheduler's own presentation records
(fleet.scheduler.kpis.station_lines) and the runtime's robot states (count_states), so
it counts what /api/kpis and the metrics count. Only the records added since the last
sample are read: a sample costs the same after a week as after an hour.

Readers (HTTP threads) take `samples`, a tuple replaced whole after each sample: no lock.
The history lives in memory, like the scheduler's KPIs: a restart starts it afresh.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

from fleet.motion import RobotState
from fleet.scheduler.kpis import station_lines
from fleet.scheduler.workflows import PresentationRecord
from fleet.service.runtime import ROBOT_STATES, count_states

#: Defaults: a sample a minute, four hours kept (240 samples).
INTERVAL_S = 60.0
KEEP = 240


@dataclass(frozen=True)
class Sample:
    t: float  # fleet clock, s
    robots: tuple[int, ...]  # robots in each of ROBOT_STATES
    lines: tuple[int, ...]  # lines worked at each station after the history began, up to t


class KpiHistory:
    def __init__(self, stations: Sequence[str], interval_s: float = INTERVAL_S, keep: int = KEEP) -> None:
        if interval_s <= 0 or keep < 1:
            raise ValueError(f"interval_s must be > 0 and keep >= 1, not {interval_s} and {keep}")
        self.stations = tuple(stations)
        self.interval_s = interval_s
        self.keep = keep
        self.started: float | None = None  # fleet clock when the history began
        #: Where lines_per_hour counts from when no sample lies a window back: the start,
        #: then (once the ring is full) the last sample that dropped out.
        self.origin: Sample | None = None
        self.samples: tuple[Sample, ...] = ()
        self._ring: deque[Sample] = deque(maxlen=keep)
        self._seen = 0  # presentation records already counted
        self._totals = [0] * len(self.stations)
        self._index = {s: i for i, s in enumerate(self.stations)}
        self._due = math.inf

    def observe(self, now: float, records: Sequence[PresentationRecord], robots: Iterable[RobotState]) -> bool:
        """Called at the end of every control cycle; takes a sample when one is due (every
        `interval_s` from the first call). Returns whether it did."""
        if self.started is None:
            self.started = now
            self.origin = Sample(now, (0,) * len(ROBOT_STATES), (0,) * len(self.stations))
            self._due = now + self.interval_s
            self._seen = len(records)  # what was worked before is not this history's
        if now < self._due:
            return False
        for station_id, lines in station_lines(records[self._seen:]).items():
            self._totals[self._index[station_id]] += lines
        self._seen = len(records)
        counts = count_states(robots)
        if len(self._ring) == self.keep:
            self.origin = self._ring[0]
        self._ring.append(Sample(now, tuple(counts[s] for s in ROBOT_STATES), tuple(self._totals)))
        self.samples = tuple(self._ring)
        # the next one a whole interval after the start (a late cycle does not shift them)
        self._due = self.started + self.interval_s * (math.floor((now - self.started) / self.interval_s) + 1)
        return True

    def series(self, since: float | None = None, window_s: float = 900.0,
               stations: Sequence[str] | None = None) -> dict:
        """The samples after `since` (all if None) as columns: `t`, robots by state, and per
        station the lines since the start and the lines per hour over the `window_s` before
        each sample (from the start, or the oldest sample kept, when that is nearer)."""
        samples, origin = self.samples, self.origin
        points = ([origin] if origin is not None else []) + list(samples)
        times = [p.t for p in points]
        first = 0 if since is None else bisect.bisect_right([s.t for s in samples], since)
        shown = samples[first:]
        wanted = self.stations if stations is None else stations
        out_stations = {}
        for station_id in wanted:
            i = self._index[station_id]
            rates = []
            for sample in shown:
                # the latest point at least a window before this sample, else the oldest
                back = points[max(0, bisect.bisect_right(times, sample.t - window_s) - 1)]
                span = sample.t - back.t
                rates.append(round((sample.lines[i] - back.lines[i]) * 3600.0 / span, 1) if span > 0 else 0.0)
            out_stations[station_id] = {"lines": [s.lines[i] for s in shown], "lines_per_hour": rates}
        return {"interval_s": self.interval_s, "keep": self.keep, "window_s": window_s, "started": self.started,
                "t": [s.t for s in shown],
                "robots": {state: [s.robots[k] for s in shown] for k, state in enumerate(ROBOT_STATES)},
                "stations": out_stations}
