"""Why a pick port idles: the time between two shelves at a port, against the operator's
work per shelf (issue 6, utilisation).

Runs `fleet sim` in-process and watches every pick port after every control cycle: each
second after warm-up it files each port's state under one reason, per port (busy, or idle because
the next robot stands on a working cell but is not presented, the last robot is still on
the working cell, the next one is in the queue but not yet on a working cell, it is still
on its way, a robot is on its way to lift the next shelf, the next shelf waits for a free
robot, or no shelf is wanted); for every presentation it keeps the operator's work
(start to departure) and the swap (departure to the next start) when the next robot
already waited in the queue. A port with one working cell can be busy at most
work / (work + swap) of the time however many robots there are; at a port with two the
next shelf swaps in while the operator works, and the swap seen by the operator is
about zero. Prints one JSON object.

    .venv/bin/python benchmarks/port_swap.py [--map maps/medium.toml] [--robots 120] [--hours 0.5] [--orders-per-hour 2400] [--slotting] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter

from fleet.scheduler.batching import Batching
from fleet.scheduler.workflows import SchedulerConfig
from fleet.simulation import SimConfig, Simulation
from maps import load_map


class PortWatch:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.reasons: dict[str, Counter[str]] = {port: Counter() for port in sim.scheduler.pick_ports}
        self.work: list[float] = []
        self.swaps: list[float] = []
        self._since: dict[str, float] = {}  # port -> when its last shelf departed
        self._waiting: dict[str, bool] = {}  # port -> the next robot stood in a slot at that departure
        self._started: dict[str, float] = {}  # port -> start of the presentation seen last
        self._records = 0  # presentation records already read
        self._next_sample = 0.0

    def __call__(self, now: float) -> None:
        """Departures from the scheduler's records, starts from its open presentations: at a
        port with two working cells the next presentation starts in the same control cycle
        as the last one ends, so the port never shows as free in between."""
        sched, warm = self.sim.scheduler, self.sim.config.warm_up_s
        for record in sched.presented[self._records:]:
            if record.station_id in sched.pick_ports:
                if record.start > warm:
                    self.work.append(record.end - record.start)
                self._since[record.station_id] = record.end
                self._waiting[record.station_id] = self._someone_in_a_slot(record.station_id)
        self._records = len(sched.presented)
        for port in sched.pick_ports:
            p = sched.presentations.get(port)
            if p is not None and self._started.get(port) != p.started:
                self._started[port] = p.started
                if port in self._since and self._waiting[port] and p.started > warm:
                    self.swaps.append(p.started - self._since.pop(port))
        if now >= self._next_sample and now > warm:
            self._next_sample = now + 1.0
            for port in sched.pick_ports:
                self.reasons[port][self._reason(port)] += 1

    def _someone_in_a_slot(self, port: str) -> bool:
        """A robot of the port's queue stands in a slot of its line (working or queue cell)."""
        queue, robots = self.sim.scheduler.queues[port], self.sim.motion.robots
        return any((line := queue.line_of(r)) is not None and robots[r].cell in queue.lines[line] for r in queue.robots)

    def _reason(self, port: str) -> str:
        sched, robots = self.sim.scheduler, self.sim.motion.robots
        if port in sched.presentations:
            return "busy"
        queue = sched.queues[port]
        if any(queue.on_working_cell(r, robots[r].cell) for r in queue.robots):
            return "idle: the next robot is on a working cell"
        if any(r.cell in queue.working for r in robots.values()):
            return "idle: the last robot is still on the working cell"
        if self._someone_in_a_slot(port):
            return "idle: the next robot is in the queue, moving up"
        if len(queue):
            return "idle: the next robot is on its way"
        bound = {shelf for shelf, stops in sched.itinerary.items() if port in stops}
        if any(job.task is not None and job.task.shelf in bound for job in sched.jobs.values()):
            return "idle: a robot is fetching the next shelf"
        if bound & set(sched.fetches):
            return "idle: the next shelf waits for a robot"
        return "idle: no shelf wanted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="maps/medium.toml")
    parser.add_argument("--robots", type=int, default=120)
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--orders-per-hour", type=float, default=2400.0)
    parser.add_argument("--order-shelves", type=int, default=SimConfig.order_shelves_per_port,
                        help="order shelves per pick port (put wall)")
    parser.add_argument("--shelves-per-slot", type=float, default=SchedulerConfig.shelves_per_slot,
                        help="shelves on their way to a port at most, per slot of its queues")
    parser.add_argument("--slotting", action="store_true", help="shelves go back near the port they left")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--dt", type=float, default=0.1)
    args = parser.parse_args()
    sim = Simulation(load_map(args.map), SimConfig(
        robots=args.robots, hours=args.hours, seed=args.seed, orders_per_hour=args.orders_per_hour,
        batching=Batching.GREEDY, order_shelves_per_port=args.order_shelves,
        control_period_s=args.period, physics_dt_s=args.dt),
        scheduler_config=SchedulerConfig(batching=Batching.GREEDY, shelves_per_slot=args.shelves_per_slot,
                                         slotting=args.slotting))
    watch = PortWatch(sim)
    kpis = sim.run(watch=watch)
    samples = sum(next(iter(watch.reasons.values())).values())
    work, swap = statistics.mean(watch.work), statistics.mean(watch.swaps)
    print(json.dumps({
        "map": sim.map.name, "robots": args.robots, "hours": args.hours, "orders_per_hour": args.orders_per_hour,
        "order_shelves_per_port": args.order_shelves, "shelves_per_slot": args.shelves_per_slot, "period_s": args.period,
        "pick_utilisation_mean": kpis["pick_utilisation_mean"], "lines_per_presentation": kpis["lines_per_presentation"],
        "port_time": {port: {k: round(v / samples, 3) for k, v in reasons.most_common()}
                      for port, reasons in watch.reasons.items()},
        "work_s": {"mean": round(work, 2), "p50": round(statistics.median(watch.work), 2), "n": len(watch.work)},
        "swap_s": {"mean": round(swap, 2), "p50": round(statistics.median(watch.swaps), 2), "n": len(watch.swaps)},
        "utilisation_bound_one_working_cell": round(work / (work + swap), 3),
        "wall_seconds": kpis["wall_seconds"],
    }))


if __name__ == "__main__":
    main()
