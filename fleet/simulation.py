"""The whole warehouse in simulated time: scheduler, traffic control, emulated robots and
simulated people at the ports, with the KPIs the customer judges the system by.

The robots are the firmware emulator behind the in-process link, the same RobotLink
interface a real fleet is driven through, so the emulator stays the independent witness
of collisions. Operators take a random time per pick and per stow (lognormal around
the configured mean). Every KPI is defined in docs/kpis.md.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from drivers.inprocess import InProcessLink
from firmware_emulator.placement import populate, start_cells
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from fleet.domain.generator import GeneratorConfig, Scenario, generate
from fleet.motion import MotionControl
from fleet.scheduler.batching import Batching
from fleet.scheduler.kpis import SAMPLED_STATES, KpiSampler, run_kpis
from fleet.scheduler.operators import OperatorTimes, SimulatedOperators
from fleet.scheduler.workflows import Scheduler, SchedulerConfig
from fleet.traffic.control import TrafficControl
from maps.model import Heading, StationKind, WarehouseMap


@dataclass(frozen=True)
class SimConfig:
    robots: int = 20
    hours: float = 1.0
    seed: int = 0
    orders_per_hour: float = 600.0
    inbound_notes_per_hour: float = 4.0
    batching: Batching = Batching.GREEDY
    slotting: bool = False  # shelves go back near the port they left (SchedulerConfig.slotting)
    seconds_per_pick: float = 6.0  # one pick pair: take from the bin, put in the box, confirm
    seconds_per_unit: float = 1.0  # each unit beyond the first of a pair
    seconds_per_stow: float = 10.0  # one put: goods into the lit bin, scan the bin
    operator_spread: float = 0.3  # sigma of the lognormal operator time
    order_shelves_per_port: int = 8  # the put wall of each pick port (4 left ports without a round)
    warm_up_s: float = 900.0  # left out of utilisation KPIs (the first shelves are on their way)
    control_period_s: float = 0.25
    physics_dt_s: float = 0.05
    sample_every_s: float = 1.0
    stuck_after_s: float = 600.0
    initial_charge: tuple[float, float] = (0.5, 1.0)  # robots start with a charge drawn from this range

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.robots, int) or self.robots < 1:
            problems.append(f"robots must be an integer >= 1, got {self.robots!r}")
        if not isinstance(self.order_shelves_per_port, int) or self.order_shelves_per_port < 1:
            problems.append(f"order_shelves_per_port must be an integer >= 1, got {self.order_shelves_per_port!r}")
        for name in ("hours", "seconds_per_pick", "seconds_per_stow", "control_period_s", "physics_dt_s",
                     "sample_every_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("orders_per_hour", "inbound_notes_per_hour", "seconds_per_unit", "operator_spread",
                     "warm_up_s", "stuck_after_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        low, high = self.initial_charge
        if not 0 < low <= high <= 1:
            problems.append(f"initial_charge must be (low, high) with 0 < low <= high <= 1, got {self.initial_charge}")
        if problems:
            raise ValueError("simulation: " + "; ".join(problems))


class Simulation:
    def __init__(self, wmap: WarehouseMap, config: SimConfig = SimConfig(),
                 scheduler_config: SchedulerConfig | None = None, generator: GeneratorConfig = GeneratorConfig()) -> None:
        """`generator` shapes the catalogue and the stock; the rates and the duration come
        from `config`."""
        self.map = wmap
        self.config = config
        self.scenario: Scenario = generate(wmap, config.seed, replace(
            generator, orders_per_hour=config.orders_per_hour, inbound_notes_per_hour=config.inbound_notes_per_hour,
            duration_s=config.hours * 3600.0, order_shelves_per_pick_station=config.order_shelves_per_port))
        self.clock = SimulatedClock()
        shelves = {s.id: s.home for s in self.scenario.inventory.shelves()}
        shelves.update((s.id, s.home) for s in self.scenario.order_shelves)
        self.world = World(wmap, self.clock, dt=config.physics_dt_s, seed=config.seed, shelves=shelves)
        for shelf in self.scenario.inventory.shelves():
            self.world.set_shelf_weight(shelf.id, shelf.total_weight_kg)
        cells = start_cells(wmap, config.robots)
        robot_ids = populate(self.world, config.robots)
        self.rng = np.random.default_rng([config.seed, 6])
        for robot_id in robot_ids:
            i = self.world.robots[robot_id].index
            charge = float(self.rng.uniform(*config.initial_charge))
            self.world.soc[i] = charge
            self.world.pct[i] = int(math.floor(charge * 100))
        self.link = InProcessLink(self.world)
        self.motion = MotionControl(self.link, TrafficControl(wmap, rotation=True, seed=config.seed))
        for robot_id, cell in zip(robot_ids, cells):
            self.motion.add_robot(robot_id, cell, Heading.EAST)
            self.motion.robots[robot_id].charge = float(self.world.soc[self.world.robots[robot_id].index])
        sched = scheduler_config or SchedulerConfig(batching=config.batching, slotting=config.slotting)
        self.scheduler = Scheduler(wmap, self.motion, self.scenario.inventory, self.scenario.order_shelves, sched)
        self.stock_at_start = self.scenario.inventory.totals()
        self._orders = sorted(self.scenario.orders, key=lambda o: (o.created, o.id))
        self._notes = sorted(self.scenario.inbound, key=lambda n: (n.created, n.id))
        self.operators = SimulatedOperators(self.scheduler, OperatorTimes(
            config.seconds_per_pick, config.seconds_per_unit, config.seconds_per_stow, config.operator_spread), self.rng)
        self.sampler = KpiSampler(self.scheduler, config.sample_every_s, config.warm_up_s)
        self.wall_s = 0.0

    # --- running --------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None = None,
            watch: Callable[[float], None] | None = None) -> dict:
        """`watch(now)` sees the warehouse after every control cycle (benchmarks/port_swap.py
        traces the ports with it)."""
        config = self.config
        end = config.hours * 3600.0
        started = time.perf_counter()
        while self.clock.now() < end - 1e-9:
            self.clock.advance(config.control_period_s)
            now = self.clock.now()
            self._arrivals(now)
            self.scheduler.tick(now)
            self.operators.work(now)
            if watch is not None:
                watch(now)
            if self.sampler.observe(now) and progress is not None:
                progress(now / end)
        self.wall_s = time.perf_counter() - started
        return self.kpis()

    def _arrivals(self, now: float) -> None:
        while self._orders and self._orders[0].created <= now:
            self.scheduler.receive_order(self._orders.pop(0))
        while self._notes and self._notes[0].created <= now:
            self.scheduler.receive_inbound(self._notes.pop(0))

    # --- KPIs -----------------------------------------------------------------------
    def kpis(self) -> dict:
        """Every figure here is defined in docs/kpis.md."""
        return run_kpis(self.sampler, robots=self.config.robots, seed=self.config.seed, now=self.clock.now(),
                        stuck_after_s=self.config.stuck_after_s, collisions=len(self.world.collisions),
                        laser_stops=int(self.world.laser_stops), wall_s=self.wall_s)

    def stock_change(self) -> dict[str, int]:
        """Per SKU: units in stock now minus at the start."""
        now = self.scenario.inventory.totals()
        return {sku: now.get(sku, 0) - self.stock_at_start.get(sku, 0)
                for sku in set(now) | set(self.stock_at_start)}

    # --- plots ----------------------------------------------------------------------
    def plot(self, directory: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        directory.mkdir(parents=True, exist_ok=True)
        sched, s = self.scheduler, self.sampler.samples
        out = []
        bin_s = 900.0
        edges = np.arange(0.0, self.clock.now() + bin_s, bin_s)
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for site in self.map.stations_of(StationKind.PICK):
            ends = [r.end for r in sched.presented if r.station_id == site.id for _ in range(r.lines)]
            counts, _ = np.histogram(ends, edges)
            ax.plot(edges[1:] / 3600.0, counts * 3600.0 / bin_s, label=site.id)
        ax.set_xlabel("simulated hours")
        ax.set_ylabel("order lines per hour (15 min bins)")
        ax.set_title(f"Throughput per pick station, {self.config.robots} robots")
        ax.legend(fontsize="small")
        out.append(self._save(fig, directory / "throughput.png"))
        fig, ax = plt.subplots(figsize=(9, 4.5))
        hours = np.array(s.times) / 3600.0
        ax.stackplot(hours, *[[c[state] for c in s.robot_states] for state in SAMPLED_STATES], labels=SAMPLED_STATES)
        ax.set_xlabel("simulated hours")
        ax.set_ylabel("robots")
        ax.set_title("Robot states over time")
        ax.legend(loc="upper right", fontsize="small")
        out.append(self._save(fig, directory / "robot_states.png"))
        fig, ax = plt.subplots(figsize=(9, 7))
        image = ax.imshow(s.occupancy / max(1, len(s.times)), cmap="magma", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="share of time a robot is on the cell (summed over robots)")
        ax.set_title(f"Cell occupancy, {self.map.name}")
        out.append(self._save(fig, directory / "occupancy.png"))
        return out

    @staticmethod
    def _save(fig, path: Path) -> Path:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return path


def progress_bar(stream=sys.stderr, width: int = 40) -> Callable[[float], None]:
    """A text progress bar that redraws only when the shown percentage changes."""
    shown = [-1]
    started = time.perf_counter()

    def update(fraction: float) -> None:
        percent = int(fraction * 100)
        if percent == shown[0]:
            return
        shown[0] = percent
        filled = int(fraction * width)
        elapsed = time.perf_counter() - started
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%  {elapsed:6.0f} s wall")
        if percent >= 100:
            stream.write("\n")
        stream.flush()

    return update
