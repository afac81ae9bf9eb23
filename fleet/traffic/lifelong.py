"""The lifelong routing benchmark: robots on endless random errands, in unit-time steps.

This is the League of Robot Runners / RHCR setting: every robot always has a goal; on
reaching it, it is given a random endpoint as its next goal. It measures the planner
alone (no workflows, no timing noise), and every run is replayed by the independent
checker, so a throughput figure never comes from paths that collide.
"""

from __future__ import annotations

import random
import resource
import statistics
import time
from typing import Sequence

import numpy as np

from fleet.traffic.checker import check_paths
from fleet.traffic.grid import CACHE_BYTES, UNREACHABLE, Grid, warm_up
from fleet.traffic.guidance import CONTRAFLOW, CROWDING
from fleet.traffic.planner import LifelongPlanner
from fleet.traffic.window import SEARCHES, TIME_CAP_MS, warm_up as warm_up_window
from maps.model import Cell, WarehouseMap


def throughput_ceiling(grid: Grid, agents: int, endpoints: Sequence[int], rotation: bool, seed: int = 0) -> float:
    """agents / mean shortest distance between two random endpoints: what the robots
    could finish per step if nobody ever waited (sampled over 64 goals)."""
    rng = random.Random(seed)
    goals = rng.sample(list(endpoints), min(64, len(endpoints)))
    starts = np.asarray(endpoints)
    lengths = []
    for g in goals:
        table = grid.distances(g, oriented=rotation)[starts]
        if rotation:
            table = table.mean(axis=1)
        lengths.append(table[(starts != g) & (table < UNREACHABLE)])
    pairs = np.concatenate(lengths)
    return agents / float(pairs.mean()) if pairs.size else 0.0


class Waits:
    """Per robot, the steps since it last got closer to its goal than it had been (by
    the floor's distances, so a detour counts as waiting), and who waited longest: the
    robot, the step it last got closer, the cell it stood on when it set the record and
    its goal, to look up in a replay."""

    def __init__(self, agents: int) -> None:
        self._best = [UNREACHABLE] * agents
        self._waited = [0] * agents
        self.longest = 0
        self.who: tuple[int, int, int, int] | None = None  # robot, since step, cell, goal

    def arrived(self, robot: int) -> None:
        self._best[robot], self._waited[robot] = UNREACHABLE, 0

    def measure(self, robot: int, step: int, left: int, cell: int, goal: int) -> None:
        """Robot stands on `cell` at `step`, `left` from `goal`."""
        if left < self._best[robot]:
            self._best[robot], self._waited[robot] = left, 0
            return
        self._waited[robot] += 1
        if self._waited[robot] > self.longest:
            self.longest = self._waited[robot]
            self.who = (robot, step - self.longest, cell, goal)


def run_lifelong(
    wmap: WarehouseMap,
    agents: int,
    steps: int,
    rotation: bool = False,
    endpoints: Sequence[Cell] | None = None,
    starts: Sequence[Cell] | None = None,
    seed: int = 0,
    following: bool = False,
    street_penalty: int = 1,
    table_memory_gb: float = CACHE_BYTES / 2**30,
    one_way_aisles: bool = False,
    two_lane_roads: bool = False,
    guidance: str = "shortest",
    lag_after: int | None = None,
    window: int | None = None,
    window_searches: int = SEARCHES,
    window_ms: float = TIME_CAP_MS,
    contraflow: int = CONTRAFLOW,
    crowding: int = CROWDING,
) -> dict:
    """`table_memory_gb` caps the cached distance tables: a robot's goal needs one (1.1 MB
    with rotation on 500 x 140), and a cap under the goals in play makes every step
    search them all again. `one_way_aisles` drives every one-wide aisle only in its lane's
    direction, as loaded robots do in the warehouse (docs/traffic.md); a goal that this
    cuts off shows as blocked robots; `two_lane_roads` also makes every two-wide road two
    one-way lanes, keeping right. `lag_after` is the planner's rule of that name."""
    began = time.perf_counter()
    warm_up()
    if window is not None:
        warm_up_window()
    warm_up_ms = (time.perf_counter() - began) * 1000
    grid = Grid.from_map(wmap, street_penalty=street_penalty, cache_bytes=int(table_memory_gb * 2**30))
    if one_way_aisles or two_lane_roads:
        grid = grid.one_way((), grid.two_lane_roads() if two_lane_roads else grid.lanes)
    rng = random.Random(seed)
    free = [int(c) for c in grid.free_cells()]
    ends = [grid.index(c) for c in endpoints] if endpoints else free
    if len(set(ends)) < 2:
        raise ValueError("robots need at least two distinct endpoints to shuttle between")
    for i in ends:
        if not grid.passable[i]:
            raise ValueError(f"endpoint {grid.cell(i)} is not a free cell of {wmap.name}")
    if starts:
        if len(starts) < agents:
            raise ValueError(f"{agents} agents need {agents} start cells, the list has {len(starts)}")
        cells = [grid.index(c) for c in starts[:agents]]
        if len(set(cells)) != agents or not all(grid.passable[c] for c in cells):
            raise ValueError("start cells must be distinct free cells")
    else:
        if agents > len(free):
            raise ValueError(f"{agents} agents do not fit on {len(free)} free cells")
        cells = rng.sample(free, agents)
    headings = [rng.randrange(4) if rotation else 0 for _ in range(agents)]

    def new_goal(cell: int) -> int:
        goal = rng.choice(ends)
        while goal == cell and len(ends) > 1:
            goal = rng.choice(ends)
        return goal

    goals = [new_goal(c) for c in cells]
    planner = LifelongPlanner(grid, rotation=rotation, following=following, seed=seed, guidance=guidance,
                              lag_after=lag_after, window=window,
                              window_searches=window_searches, window_ms=window_ms, contraflow=contraflow,
                              crowding=crowding)
    xy = np.zeros((steps + 1, agents, 2), dtype=np.int32)
    heads = np.zeros((steps + 1, agents), dtype=np.int8)
    xy[0, :, 0] = np.asarray(cells) % grid.width
    xy[0, :, 1] = np.asarray(cells) // grid.width
    heads[0] = headings
    plan_ms: list[float] = []
    finished = 0
    waits = Waits(agents)
    blocked_steps = 0
    for t in range(steps):
        started = time.perf_counter()
        plan = planner.plan(cells, headings, goals)
        plan_ms.append((time.perf_counter() - started) * 1000)
        blocked_steps += len(plan.blocked)
        cells, headings = plan.cells, plan.headings
        for i, c in enumerate(cells):
            if c == goals[i]:
                finished += 1
                goals[i] = new_goal(c)
                waits.arrived(i)
                continue
            table = planner.floor.distances(goals[i], oriented=rotation, guided=True)
            waits.measure(i, t + 1, int(table[c, headings[i]] if rotation else table[c]), c, goals[i])
        xy[t + 1, :, 0] = np.asarray(cells) % grid.width
        xy[t + 1, :, 1] = np.asarray(cells) // grid.width
        heads[t + 1] = headings
    conflicts = check_paths(wmap, xy, heads if rotation else None, following_allowed=following)
    return {
        "map": wmap.name,
        "agents": agents,
        "steps": steps,
        "rotation": rotation,
        "following": following,
        "street_penalty": street_penalty,
        "one_way_aisles": one_way_aisles,
        "two_lane_roads": two_lane_roads,
        "guidance": guidance,
        "flow_weights": {"contraflow": contraflow, "crowding": crowding} if guidance == "flow" else None,
        "lag_after": lag_after,
        "window": window,
        "window_searches_per_step": window_searches if window is not None else None,
        "window_ms": window_ms if window is not None else None,
        "window_searches": planner.window_searches,
        "seed": seed,
        "tasks_finished": finished,
        "throughput": finished / steps if steps else 0.0,
        "throughput_ceiling": round(throughput_ceiling(grid, agents, ends, rotation, seed), 3),
        "plan_ms_mean": round(statistics.fmean(plan_ms), 3) if plan_ms else 0.0,
        "plan_ms_p50": round(float(np.percentile(plan_ms, 50)), 3) if plan_ms else 0.0,
        "plan_ms_p99": round(float(np.percentile(plan_ms, 99)), 3) if plan_ms else 0.0,
        "plan_ms_max": round(max(plan_ms), 3) if plan_ms else 0.0,
        "first_plan_ms": round(plan_ms[0], 3) if plan_ms else 0.0,
        "jit_load_ms": round(warm_up_ms, 1),
        "table_memory_gb": table_memory_gb,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "collisions": conflicts.collisions,
        "conflicts": conflicts.as_dict(),
        "max_wait_steps": waits.longest,
        "longest_wait": None if waits.who is None else {
            "robot": waits.who[0], "since_step": waits.who[1], "cell": list(grid.cell(waits.who[2])),
            "goal": list(grid.cell(waits.who[3]))},
        "blocked_robot_steps": blocked_steps,
    }
