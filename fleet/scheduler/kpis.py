"""The scheduler's KPIs: what the stations and orders achieved so far.

`fleet sim` adds the figures only sampling gives (utilisation, charging share) and the
emulator's (collisions); the service reports these as they stand at any moment. Every
figure is defined in docs/kpis.md.
"""

from __future__ import annotations

import numpy as np

from fleet.scheduler.workflows import CHARGING, Scheduler, Stage
from maps.model import StationKind


def stuck_tasks(sched: Scheduler, now: float, stuck_after_s: float) -> int:
    """Robots in one working stage for longer than `stuck_after_s`."""
    return sum(1 for j in sched.jobs.values()
               if j.stage not in CHARGING and j.stage is not Stage.PARK and now - j.since > stuck_after_s)


def scheduler_kpis(sched: Scheduler, now: float, stuck_after_s: float) -> dict:
    hours = now / 3600.0
    picks = [r for r in sched.presented if r.kind is StationKind.PICK and r.lines > 0]
    cycle = [sched.picked_at[o] - sched.orders[o].created for o in sched.picked_at]
    stations = {}
    for site in sched.map.stations:
        done = [r for r in sched.presented if r.station_id == site.id]
        stations[site.id] = {
            "kind": site.kind.value,
            "lines_per_hour": round(sum(r.lines for r in done) / hours, 1) if hours else 0.0,
            "presentations": len(done),
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
