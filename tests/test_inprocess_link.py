"""The in-process RobotLink, end to end against emulated robots on a simulated clock."""

from __future__ import annotations

import pytest

from drivers.commands import ActionKind, InstantCommand, InstantKind, Step
from drivers.events import (
    ActionFinished,
    CellReached,
    JobFinished,
    JobRejected,
    LoadChanged,
    StatusReport,
)
from drivers.inprocess import InProcessLink
from drivers.link import RobotLink, UnknownRobot
from emulator_kit import Bench, act, job, line
from maps import Cell, Heading


def test_a_fetch_through_the_link_reports_every_step_in_order() -> None:
    bench = Bench()
    bench.world.add_robot("r1", Cell(3, 3), Heading.EAST)
    bench.world.add_robot("r2", Cell(1, 1), Heading.EAST)
    link: RobotLink = InProcessLink(bench.world)
    assert sorted(link.robot_ids()) == ["r1", "r2"]
    # go under shelf-3-4, lift it, carry it north two cells, then extend: one more east
    link.send_job("r1", job("fetch", [Cell(3, 3), Cell(3, 4), Cell(3, 4), Cell(3, 3), Cell(3, 2)],
                            actions={2: [act(ActionKind.LIFT, "lift-1", shelf_id="shelf-3-4")]}))
    bench.run(6)
    link.extend_job("r1", "fetch", [Step(Cell(4, 2))])
    bench.run(15)
    events = [e for e in link.drain() if e.robot_id == "r1" and not isinstance(e, StatusReport)]
    kinds = [type(e).__name__ for e in events if type(e).__name__ != "BatteryReport"]
    assert kinds == ["CellReached", "LoadChanged", "ActionFinished", "CellReached", "CellReached",
                     "CellReached", "JobFinished"]
    reads = [e for e in events if isinstance(e, CellReached)]
    assert [(e.cell, e.step_index) for e in reads] == [(Cell(3, 4), 1), (Cell(3, 3), 3), (Cell(3, 2), 4), (Cell(4, 2), 5)]
    assert all(e.job_id == "fetch" for e in reads)
    lift = next(e for e in events if isinstance(e, ActionFinished))
    assert lift.action_id == "lift-1" and lift.kind is ActionKind.LIFT
    assert next(e for e in events if isinstance(e, LoadChanged)).shelf_id == "shelf-3-4"
    times = [e.time for e in events]
    assert times == sorted(times) and times[-1] <= bench.clock.now()
    assert link.drain() == []  # drained means drained


def test_events_carry_the_clock_time_when_they_were_emitted() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    link = InProcessLink(bench.world)
    bench.run(0.5)
    link.instant("r", InstantCommand(InstantKind.STATUS))
    link.send_job("r", job("j", line(1, 2, 2, 2)))
    bench.run(5)
    events = link.drain()
    status = next(e for e in events if isinstance(e, StatusReport) and e.time == 0.5)
    assert status.cell == Cell(1, 2) and status.heading is Heading.EAST
    finished = next(e for e in events if isinstance(e, JobFinished))
    assert finished.time == pytest.approx(0.5 + 2.0)  # a 1 m run takes 2 s


def test_refusals_arrive_as_events() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    link = InProcessLink(bench.world)
    link.send_job("r", job("j", line(4, 2, 5, 2)))
    link.extend_job("r", "nope", [Step(Cell(2, 2))])
    rejected = [e for e in link.drain() if isinstance(e, JobRejected)]
    assert [e.job_id for e in rejected] == ["j", "nope"]


def test_unknown_robots_and_a_closed_link_are_errors() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    link = InProcessLink(bench.world)
    with pytest.raises(UnknownRobot, match="unknown robot 'ghost'"):
        link.send_job("ghost", job("j", [Cell(1, 1)]))
    with pytest.raises(UnknownRobot):
        link.instant("ghost", InstantCommand(InstantKind.PAUSE))
    link.close()
    link.close()  # idempotent
    bench.world.robot("r").report_status()
    assert link.drain() == []  # no longer subscribed
    with pytest.raises(RuntimeError, match="closed"):
        link.instant("r", InstantCommand(InstantKind.STATUS))


def test_two_links_hear_the_same_robots() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    first, second = InProcessLink(bench.world), InProcessLink(bench.world)
    first.instant("r", InstantCommand(InstantKind.STATUS))
    assert [type(e) for e in first.drain()] == [StatusReport]
    assert [type(e) for e in second.drain()] == [StatusReport]


def test_a_seeded_run_repeats_event_for_event() -> None:
    from firmware_emulator.faults import random_faults
    from firmware_emulator.placement import populate
    from firmware_emulator.wander import Wanderer
    from firmware_emulator.world import World
    from fleet.clock import SimulatedClock
    from maps import shipped_map

    def run(seed: int) -> list:
        clock = SimulatedClock()
        world = World(shipped_map("demo"), clock, dt=0.1, seed=seed)
        ids = populate(world, 8)
        world.inject_all(random_faults(ids, horizon=30, per_robot_hour=120, seed=seed))
        wanderer = Wanderer(InProcessLink(world), world.map, seed=seed)
        seen = []
        world.subscribe(seen.append)
        for k in range(1, 61):
            clock.advance_to(k * 0.5)
            wanderer.pump()
        return seen

    first = run(5)
    assert len(first) > 200
    assert first == run(5)
    assert first != run(6)
