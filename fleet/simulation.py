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
from collections import Counter
from dataclasses import dataclass, field, replace
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
from fleet.scheduler.terminals import PickPresentation
from fleet.scheduler.workflows import WORKING, Scheduler, SchedulerConfig, Stage
from fleet.traffic.control import TrafficControl
from maps.model import Heading, StationKind, WarehouseMap

#: Robot states sampled for the KPIs and the plot, in plotting order.
ROBOT_STATES = ("working", "charging", "parked", "idle", "down")
CHARGING_STAGES = frozenset({Stage.CHARGE, Stage.CHARGING, Stage.WAIT_CHARGER, Stage.UNPLUG})


@dataclass(frozen=True)
class SimConfig:
    robots: int = 20
    hours: float = 1.0
    seed: int = 0
    orders_per_hour: float = 600.0
    inbound_notes_per_hour: float = 4.0
    batching: Batching = Batching.GREEDY
    seconds_per_pick: float = 6.0  # one pick pair: take from the bin, put in the box, confirm
    seconds_per_unit: float = 1.0  # each unit beyond the first of a pair
    seconds_per_stow: float = 10.0  # one put: goods into the lit bin, scan the bin
    operator_spread: float = 0.3  # sigma of the lognormal operator time
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


@dataclass
class Samples:
    """What the simulation saw once per sample period."""

    times: list[float] = field(default_factory=list)
    robot_states: list[Counter[str]] = field(default_factory=list)
    station_busy: dict[str, list[bool]] = field(default_factory=dict)
    occupancy: np.ndarray | None = None  # robot-samples per cell


class Simulation:
    def __init__(self, wmap: WarehouseMap, config: SimConfig = SimConfig(),
                 scheduler_config: SchedulerConfig | None = None, generator: GeneratorConfig = GeneratorConfig()) -> None:
        """`generator` shapes the catalogue and the stock; the rates and the duration come
        from `config`."""
        self.map = wmap
        self.config = config
        self.scenario: Scenario = generate(wmap, config.seed, replace(
            generator, orders_per_hour=config.orders_per_hour, inbound_notes_per_hour=config.inbound_notes_per_hour,
            duration_s=config.hours * 3600.0, order_shelves_per_pick_station=2))
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
        sched = scheduler_config or SchedulerConfig(batching=config.batching)
        self.scheduler = Scheduler(wmap, self.motion, self.scenario.inventory, self.scenario.order_shelves, sched)
        self.stock_at_start = self.scenario.inventory.totals()
        self._orders = sorted(self.scenario.orders, key=lambda o: (o.created, o.id))
        self._notes = sorted(self.scenario.inbound, key=lambda n: (n.created, n.id))
        self._next_action: dict[str, float] = {}
        self.samples = Samples(station_busy={s.id: [] for s in wmap.stations},
                               occupancy=np.zeros((wmap.height, wmap.width), dtype=np.int64))
        self.wall_s = 0.0

    # --- running --------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None = None) -> dict:
        config = self.config
        end = config.hours * 3600.0
        next_sample = 0.0
        started = time.perf_counter()
        while self.clock.now() < end - 1e-9:
            self.clock.advance(config.control_period_s)
            now = self.clock.now()
            self._arrivals(now)
            self.scheduler.tick(now)
            self._operators(now)
            if now >= next_sample:
                self._sample(now)
                next_sample += config.sample_every_s
                if progress is not None:
                    progress(now / end)
        self.wall_s = time.perf_counter() - started
        return self.kpis()

    def _arrivals(self, now: float) -> None:
        while self._orders and self._orders[0].created <= now:
            self.scheduler.receive_order(self._orders.pop(0))
        while self._notes and self._notes[0].created <= now:
            self.scheduler.receive_inbound(self._notes.pop(0))

    def _operators(self, now: float) -> None:
        """Each port's operator works the presented shelf one pick or put at a time."""
        config = self.config
        for port, p in list(self.scheduler.presentations.items()):
            due = self._next_action.get(port)
            if due is None:
                if isinstance(p, PickPresentation):
                    lit = p.lit
                    mean = config.seconds_per_pick + config.seconds_per_unit * (lit.quantity - 1 if lit else 0)
                else:
                    mean = config.seconds_per_stow if p.lit is not None else 1.0
                self._next_action[port] = now + mean * float(self.rng.lognormal(0.0, config.operator_spread))
                continue
            if now < due:
                continue
            del self._next_action[port]
            if isinstance(p, PickPresentation):
                self.scheduler.confirm_pick(port, now)
            elif p.lit is not None:
                self.scheduler.scan_bin(port, p.lit.bin_label, now)
            else:
                self.scheduler.depart_stow(port, p.shelf.total_weight_kg, now)
        for port in list(self._next_action):
            if port not in self.scheduler.presentations:
                del self._next_action[port]

    def _sample(self, now: float) -> None:
        s = self.samples
        s.times.append(now)
        states: Counter[str] = Counter()
        for robot_id, state in self.motion.robots.items():
            states[self._robot_state(robot_id)] += 1
            s.occupancy[state.cell.y, state.cell.x] += 1
        s.robot_states.append(states)
        for port in s.station_busy:
            s.station_busy[port].append(port in self.scheduler.presentations)

    def _robot_state(self, robot_id: str) -> str:
        if robot_id in self.scheduler.down:
            return "down"
        job = self.scheduler.jobs.get(robot_id)
        if job is None or job.stage is Stage.PARK:
            return "parked" if self.map.kind(self.motion.robots[robot_id].cell).value == "P" else "idle"
        if job.stage in CHARGING_STAGES:
            return "charging"
        return "working" if job.stage in WORKING else "idle"

    # --- KPIs -----------------------------------------------------------------------
    def kpis(self) -> dict:
        """Every figure here is defined in docs/kpis.md."""
        sched = self.scheduler
        s = self.samples
        hours = self.clock.now() / 3600.0
        warm = [i for i, t in enumerate(s.times) if t > self.config.warm_up_s] or list(range(len(s.times)))
        picks = [r for r in sched.presented if r.kind is StationKind.PICK and r.lines > 0]
        cycle = [sched.picked_at[o] - sched.orders[o].created for o in sched.picked_at]
        stations = {}
        for site in self.map.stations:
            busy = s.station_busy[site.id]
            done = [r for r in sched.presented if r.station_id == site.id]
            stations[site.id] = {
                "kind": site.kind.value,
                "lines_per_hour": round(sum(r.lines for r in done) / hours, 1) if hours else 0.0,
                "presentations": len(done),
                "utilisation": round(sum(busy[i] for i in warm) / len(warm), 3) if warm else 0.0,
            }
        robot_samples = sum(sum(s.robot_states[i].values()) for i in warm) or 1
        working = sum(s.robot_states[i]["working"] for i in warm)
        charging = sum(s.robot_states[i]["charging"] for i in warm)
        now = self.clock.now()
        stuck = [j for j in sched.jobs.values()
                 if j.stage not in CHARGING_STAGES and j.stage is not Stage.PARK
                 and now - j.since > self.config.stuck_after_s]
        pick_util = [v["utilisation"] for v in stations.values() if v["kind"] == "pick"]
        lines = sum(r.lines for r in picks)
        return {
            "map": self.map.name,
            "robots": self.config.robots,
            "batching": sched.config.batching.value,
            "seed": self.config.seed,
            "orders_received": len(sched.orders),
            "orders_completed": len(sched.picked_at),
            "order_lines_picked": sched.lines_picked,
            "units_picked": sum(sched.units_picked.values()),
            "units_stowed": sum(sched.units_stowed.values()),
            "stations": stations,
            "pick_utilisation_min": min(pick_util) if pick_util else 0.0,
            "pick_utilisation_mean": round(sum(pick_util) / len(pick_util), 3) if pick_util else 0.0,
            "robot_utilisation": round(working / robot_samples, 3),
            "presentations": len(picks),
            "lines_per_presentation": round(lines / len(picks), 3) if picks else 0.0,
            "order_cycle_time_mean_s": round(float(np.mean(cycle)), 1) if cycle else None,
            "order_cycle_time_p95_s": round(float(np.percentile(cycle, 95)), 1) if cycle else None,
            "charging_share": round(charging / robot_samples, 3),
            "collisions": len(self.world.collisions),
            "laser_stops": int(self.world.laser_stops),
            "stuck_tasks": len(stuck),
            "failed_errands": len(sched.failed_errands),
            "alarms": len(sched.alarms),
            "no_shelf": len(sched.no_shelf),
            "wall_seconds": round(self.wall_s, 1),
            "simulated_seconds": round(now, 1),
        }

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
        sched, s = self.scheduler, self.samples
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
        ax.stackplot(hours, *[[c[state] for c in s.robot_states] for state in ROBOT_STATES], labels=ROBOT_STATES)
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
