"""The scheduler's KPIs: what the stations and orders achieved so far.

`fleet sim` and `fleet demo` add the figures only sampling gives (utilisation, charging
share: KpiSampler) and the emulator's (collisions); the service reports these as they stand
at any moment. Every figure is defined in docs/kpis.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from fleet.scheduler.workflows import CHARGING, WORKING, PresentationRecord, Scheduler, Stage
from maps.model import StationKind


def stuck_tasks(sched: Scheduler, now: float, stuck_after_s: float) -> int:
    """Robots in one working stage for longer than `stuck_after_s`."""
    return sum(1 for j in sched.jobs.values()
               if j.stage not in CHARGING and j.stage is not Stage.PARK and now - j.since > stuck_after_s)


def station_lines(records: Iterable[PresentationRecord]) -> Counter[str]:
    """Lines worked per station (pick lines; puts at a stow station). A shelf's lines count
    when it leaves the port, the moment its presentation is recorded; the service's KPI
    history adds up the records of each minute with this too."""
    lines: Counter[str] = Counter()
    for r in records:
        lines[r.station_id] += r.lines
    return lines


def scheduler_kpis(sched: Scheduler, now: float, stuck_after_s: float) -> dict:
    hours = now / 3600.0
    picks = [r for r in sched.presented if r.kind is StationKind.PICK and r.lines > 0]
    cycle = [sched.picked_at[o] - sched.orders[o].created for o in sched.picked_at]
    lines_at = station_lines(sched.presented)
    presentations_at = Counter(r.station_id for r in sched.presented)
    stations = {}
    for site in sched.map.stations:
        stations[site.id] = {
            "kind": site.kind.value,
            "lines_per_hour": round(lines_at[site.id] / hours, 1) if hours else 0.0,
            "presentations": presentations_at[site.id],
        }
    lines = sum(r.lines for r in picks)
    return {
        "batching": sched.config.batching.value,
        "orders_received": len(sched.orders),
        "orders_completed": len(sched.picked_at),
        "order_lines_picked": sched.lines_picked,
        "units_picked": sum(sched.units_picked.values()),
        "units_stowed": sum(sched.units_stowed.values()),
        "stations": stations,
        "presentations": len(picks),
        "lines_per_presentation": round(lines / len(picks), 3) if picks else 0.0,
        "order_cycle_time_mean_s": round(float(np.mean(cycle)), 1) if cycle else None,
        "order_cycle_time_p95_s": round(float(np.percentile(cycle, 95)), 1) if cycle else None,
        "stuck_tasks": stuck_tasks(sched, now, stuck_after_s),
        "failed_errands": len(sched.failed_errands),
        "alarms": len(sched.alarms),
        "no_shelf": len(sched.no_shelf),
    }


#: What a robot was doing at a sample, in plotting order.
SAMPLED_STATES = ("working", "charging", "parked", "idle", "down")


@dataclass
class Samples:
    """What was seen once per sample period."""

    times: list[float] = field(default_factory=list)
    robot_states: list[Counter[str]] = field(default_factory=list)
    station_busy: dict[str, list[bool]] = field(default_factory=dict)
    occupancy: np.ndarray | None = None  # robot-samples per cell


class KpiSampler:
    """The figures only sampling gives (station and robot utilisation, charging share),
    taken from a scheduler once per `every_s` of its clock, and with them a run's whole
    summary (`run_kpis`). `fleet sim` and `fleet demo` both report through this, so their
    summaries have the same fields, computed the same way."""

    def __init__(self, sched: Scheduler, every_s: float = 1.0, warm_up_s: float = 900.0) -> None:
        self.sched = sched
        self.every_s = every_s
        #: Samples before this are left out of the utilisation figures (the first shelves
        #: are on their way), unless the run is shorter.
        self.warm_up_s = warm_up_s
        self.samples = Samples(station_busy={s.id: [] for s in sched.map.stations},
                               occupancy=np.zeros((sched.map.height, sched.map.width), dtype=np.int64))
        self._due = 0.0

    def observe(self, now: float) -> bool:
        """Called once per control cycle; samples when one is due. Returns whether it did."""
        if now < self._due:
            return False
        self._due += self.every_s
        s, sched = self.samples, self.sched
        s.times.append(now)
        states: Counter[str] = Counter()
        for robot_id, robot in sched.motion.robots.items():
            states[self.robot_state(robot_id)] += 1
            s.occupancy[robot.cell.y, robot.cell.x] += 1
        s.robot_states.append(states)
        for port, busy in s.station_busy.items():
            busy.append(port in sched.presentations)
        return True

    def robot_state(self, robot_id: str) -> str:
        sched = self.sched
        if robot_id in sched.down:
            return "down"
        job = sched.jobs.get(robot_id)
        if job is None or job.stage is Stage.PARK:
            return "parked" if sched.map.kind(sched.motion.robots[robot_id].cell).value == "P" else "idle"
        if job.stage in CHARGING:
            return "charging"
        return "working" if job.stage in WORKING else "idle"

    def kpis(self, now: float, stuck_after_s: float) -> dict:
        """scheduler_kpis with the sampled figures added (docs/kpis.md)."""
        s = self.samples
        warm = [i for i, t in enumerate(s.times) if t > self.warm_up_s] or list(range(len(s.times)))
        figures = scheduler_kpis(self.sched, now, stuck_after_s)
        for site_id, station in figures["stations"].items():
            busy = s.station_busy[site_id]
            station["utilisation"] = round(sum(busy[i] for i in warm) / len(warm), 3) if warm else 0.0
        robot_samples = sum(sum(s.robot_states[i].values()) for i in warm) or 1
        working = sum(s.robot_states[i]["working"] for i in warm)
        charging = sum(s.robot_states[i]["charging"] for i in warm)
        pick_util = [v["utilisation"] for v in figures["stations"].values() if v["kind"] == "pick"]
        return {
            **figures,
            "pick_utilisation_min": min(pick_util) if pick_util else 0.0,
            "pick_utilisation_mean": round(sum(pick_util) / len(pick_util), 3) if pick_util else 0.0,
            "robot_utilisation": round(working / robot_samples, 3),
            "charging_share": round(charging / robot_samples, 3),
        }


def run_kpis(sampler: KpiSampler, *, robots: int, seed: int, now: float, stuck_after_s: float,
             collisions: int, laser_stops: int, wall_s: float) -> dict:
    """A whole run's summary, as `fleet sim --json` and `fleet demo --duration` print it:
    the sampled KPIs between the run's identity and what the emulator, the independent
    witness, counted."""
    return {
        "map": sampler.sched.map.name,
        "robots": robots,
        "seed": seed,
        **sampler.kpis(now, stuck_after_s),
        "collisions": collisions,
        "laser_stops": laser_stops,
        "wall_seconds": round(wall_s, 1),
        "simulated_seconds": round(now, 1),
    }
