"""Why a pick port idles: the time between two shelves at a working cell, against the
operator's work per shelf (issue 6, utilisation).

Runs `fleet sim` in-process and watches every pick port after every control cycle: each
second after warm-up it files the port's state under one reason (busy, or idle because
the last robot is still on the working cell, the next one is in the queue but not yet
on it, it is still on its way, or no shelf is coming); for every presentation it keeps
the operator's work (start to departure) and the swap (departure to the next start)
when the next robot already waited in the queue. A port can be busy at most
work / (work + swap) of the time however many robots there are. Prints one JSON object.

    .venv/bin/python benchmarks/port_swap.py [--robots 120] [--hours 0.5] [--orders-per-hour 2400]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter

from fleet.scheduler.batching import Batching
from fleet.simulation import SimConfig, Simulation
from maps import load_map


class PortWatch:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.reasons: Counter[str] = Counter()
        self.work: list[float] = []
        self.swaps: list[float] = []
        self._since: dict[str, float] = {}  # port -> when its last shelf departed
        self._waiting: dict[str, bool] = {}  # port -> the next robot stood in the queue at that departure
        self._started: dict[str, float] = {}
        self._next_sample = 0.0

    def __call__(self, now: float) -> None:
        sched, warm = self.sim.scheduler, self.sim.config.warm_up_s
        for port in sched.pick_ports:
            busy = port in sched.presentations
            if busy and port not in self._started:
                self._started[port] = now
                if port in self._since and self._waiting[port] and now > warm:
                    self.swaps.append(now - self._since.pop(port))
            elif not busy and port in self._started:
                start = self._started.pop(port)
                if now > warm:
                    self.work.append(now - start)
                self._since[port] = now
                self._waiting[port] = self._first_in_queue_cell(port)
        if now >= self._next_sample and now > warm:
            self._next_sample = now + 1.0
            for port in sched.pick_ports:
                self.reasons[self._reason(port)] += 1

    def _first_in_queue_cell(self, port: str) -> bool:
        queue = self.sim.scheduler.queues[port]
        first = queue.first()
        return first is not None and self.sim.motion.robots[first].cell in queue.slots[1:]

    def _reason(self, port: str) -> str:
        sched, robots = self.sim.scheduler, self.sim.motion.robots
        if port in sched.presentations:
            return "busy"
        queue = sched.queues[port]
        if any(r.cell == queue.working for r in robots.values()):
            return "idle: the last robot is still on the working cell"
        if self._first_in_queue_cell(port):
            return "idle: the next robot is in the queue, moving up"
        if queue.first() is not None:
            return "idle: the next robot is on its way"
        return "idle: no shelf coming"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="maps/medium.toml")
    parser.add_argument("--robots", type=int, default=120)
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--orders-per-hour", type=float, default=2400.0)
    parser.add_argument("--order-shelves", type=int, default=4, help="order shelves per pick port (put wall)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--dt", type=float, default=0.1)
    args = parser.parse_args()
    sim = Simulation(load_map(args.map), SimConfig(
        robots=args.robots, hours=args.hours, seed=args.seed, orders_per_hour=args.orders_per_hour,
        batching=Batching.GREEDY, order_shelves_per_port=args.order_shelves,
        control_period_s=args.period, physics_dt_s=args.dt))
    watch = PortWatch(sim)
    kpis = sim.run(watch=watch)
    samples = sum(watch.reasons.values())
    work, swap = statistics.mean(watch.work), statistics.mean(watch.swaps)
    print(json.dumps({
        "map": sim.map.name, "robots": args.robots, "hours": args.hours, "orders_per_hour": args.orders_per_hour,
        "order_shelves_per_port": args.order_shelves, "period_s": args.period,
        "pick_utilisation_mean": kpis["pick_utilisation_mean"], "lines_per_presentation": kpis["lines_per_presentation"],
        "port_time": {k: round(v / samples, 3) for k, v in watch.reasons.most_common()},
        "work_s": {"mean": round(work, 2), "p50": round(statistics.median(watch.work), 2), "n": len(watch.work)},
        "swap_s": {"mean": round(swap, 2), "p50": round(statistics.median(watch.swaps), 2), "n": len(watch.swaps)},
        "utilisation_bound": round(work / (work + swap), 3),
        "wall_seconds": kpis["wall_seconds"],
    }))


if __name__ == "__main__":
    main()
