"""Tasks (kinds, targets, status life cycle) and run-time stations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.clock import SimulatedClock
from fleet.domain import InvalidTransition, Station, Task, TaskKind, TaskStatus, stations_of
from maps import load_map
from maps.model import Cell, StationKind

TINY = load_map(Path(__file__).parent / "data" / "tiny.toml")


def test_each_task_kind_takes_its_own_target():
    Task(id="T1", kind=TaskKind.FETCH_SHELF, shelf="SH0001", target="pick-1", created=0.0)
    Task(id="T2", kind=TaskKind.RETURN_SHELF, shelf="SH0001", target=Cell(2, 2), created=0.0)
    Task(id="T3", kind=TaskKind.MOVE_ORDER_SHELF, shelf="OS01", target="pick-1", created=0.0)
    Task(id="T4", kind=TaskKind.MOVE_ORDER_SHELF, shelf="OS01", target=Cell(5, 1), created=0.0)
    Task(id="T5", kind=TaskKind.CHARGE, target=Cell(7, 1), created=0.0)
    Task(id="T6", kind="park", target=Cell(1, 1), created=0.0)
    bad = [
        (dict(kind=TaskKind.FETCH_SHELF, target="pick-1"), "fetch_shelf task needs a shelf"),
        (dict(kind=TaskKind.CHARGE, shelf="SH1", target=Cell(7, 1)), "charge task takes no shelf"),
        (dict(kind=TaskKind.FETCH_SHELF, shelf="SH1", target=Cell(3, 4)), "targets a station id, got Cell"),
        (dict(kind=TaskKind.RETURN_SHELF, shelf="SH1", target=(2, 2)), "targets a cell, got \\(2, 2\\)"),
        (dict(kind=TaskKind.PARK, target="parking"), "targets a cell"),
        (dict(kind=TaskKind.MOVE_ORDER_SHELF, shelf="OS1", target=""), "station id or cell"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            Task(id="TX", created=0.0, **fields)
    with pytest.raises(ValueError, match="'teleport' is not a valid TaskKind"):
        Task(id="TX", kind="teleport", target=Cell(0, 0), created=0.0)


def test_task_runs_through_its_life_cycle_on_the_clock():
    clock = SimulatedClock()
    task = Task(id="T1", kind=TaskKind.FETCH_SHELF, shelf="SH0001", target="pick-1", priority=3, created=clock.now())
    assert task.status is TaskStatus.PENDING and task.robot is None and task.updated == 0.0
    clock.advance(2.0)
    task.assign("R1", clock.now())
    assert task.status is TaskStatus.ASSIGNED and task.robot == "R1" and task.updated == 2.0
    clock.advance(1.0)
    task.start(clock.now())
    clock.advance(5.0)
    task.block("queue cell (6, 4) held by R2", clock.now())
    assert task.status is TaskStatus.BLOCKED and task.reason == "queue cell (6, 4) held by R2"
    clock.advance(4.0)
    task.resume(clock.now())
    assert task.status is TaskStatus.IN_PROGRESS and task.reason is None and task.updated == 12.0
    task.finish(clock.now())
    assert task.finished and task.status is TaskStatus.DONE
    with pytest.raises(InvalidTransition, match="task T1: cannot go from done to failed"):
        task.fail("late", clock.now())


def test_blocked_task_resumes_where_it_was():
    task = Task(id="T2", kind=TaskKind.PARK, target=Cell(1, 1), created=0.0)
    task.block("no free parking cell", 1.0)
    task.resume(2.0)
    assert task.status is TaskStatus.PENDING
    task.assign("R3", 3.0)
    task.block("robot R3 reports a laser stop", 4.0)
    task.resume(5.0)
    assert task.status is TaskStatus.ASSIGNED and task.robot == "R3"
    with pytest.raises(InvalidTransition, match="only a blocked task resumes"):
        task.resume(6.0)


def test_misuse_of_a_task_is_refused():
    task = Task(id="T3", kind=TaskKind.CHARGE, target=Cell(7, 1), created=0.0)
    with pytest.raises(InvalidTransition, match="task T3: cannot go from pending to in_progress; allowed"):
        task.start(1.0)
    with pytest.raises(InvalidTransition, match="cannot go from pending to done"):
        task.finish(1.0)
    with pytest.raises(ValueError, match="needs a reason"):
        task.block("  ", 1.0)
    with pytest.raises(ValueError, match="needs a robot id"):
        task.assign("", 1.0)
    assert task.status is TaskStatus.PENDING and task.updated == 0.0
    task.assign("R1", 1.0)
    task.unassign(2.0)
    assert task.robot is None and task.status is TaskStatus.PENDING
    task.fail("charger (7, 1) out of order", 3.0)
    assert task.finished and task.reason == "charger (7, 1) out of order"
    with pytest.raises(TypeError, match="status"):
        Task(id="T4", kind=TaskKind.CHARGE, target=Cell(7, 1), created=0.0, status=TaskStatus.DONE)


def test_stations_follow_the_map():
    stations = stations_of(TINY, orders_per_round=4)
    assert [(s.id, s.kind, s.map_station, s.orders_per_round) for s in stations] == [
        ("pick-1", StationKind.PICK, "pick-1", 4), ("stow-1", StationKind.STOW, "stow-1", 4)]
    assert stations[0].site(TINY).working == (Cell(3, 4),)
    wrong = Station(id="pick-9", kind="pick", map_station="stow-1")
    with pytest.raises(ValueError, match="pick station but map station stow-1 of 'tiny' is a stow station"):
        wrong.site(TINY)
    with pytest.raises(KeyError, match="no station 'dock'"):
        Station(id="x", kind=StationKind.STOW, map_station="dock").site(TINY)
    with pytest.raises(ValueError, match="orders_per_round must be an integer >= 1"):
        Station(id="x", kind=StationKind.PICK, map_station="pick-1", orders_per_round=0)
    with pytest.raises(ValueError):
        Station(id="x", kind="sort", map_station="pick-1")
