"""Slotting: a shelf leaving a port takes a free home nearer that port (one of a shelf
now at a port, whose cell stands empty), and that shelf gets its home in exchange."""

import pytest

from fleet.domain import Order, OrderLine
from fleet.domain.task import Task, TaskKind
from fleet.scheduler.terminals import PickPresentation
from fleet.scheduler.workflows import RobotJob, SchedulerConfig, Stage
from maps.model import Cell
from scheduler_kit import Fleet


def _two_shelves(slotting: bool) -> tuple[Fleet, str, str]:
    """Two robots, a shelf of A in the alcove nearest the pick ports and one of B in the
    farthest, each ordered once, one order per port."""
    fleet = Fleet({"r1": Cell(2, 3), "r2": Cell(4, 3)}, order_shelves=2,
                  config=SchedulerConfig(orders_per_round=1, slotting=slotting))
    shelves = sorted(fleet.inventory.shelves(), key=lambda s: (s.home.x, s.home.y))
    near, far = shelves[0], shelves[-1]
    fleet.inventory.put(near.bins[0].label, "A", 5)
    fleet.inventory.put(far.bins[0].label, "B", 5)
    fleet.scheduler.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
    fleet.scheduler.receive_order(Order(id="O2", lines=(OrderLine("B", 1),), created=0.0))
    return fleet, near.id, far.id


def _serve_far_first(fleet: Fleet, far: str):
    """Operators who work the far shelf at once and the near one only once the far one
    stands in storage again: the near shelf is at its port while the far one goes back."""
    sched = fleet.scheduler

    def operate(now: float) -> None:
        for port, p in list(sched.presentations.items()):
            assert isinstance(p, PickPresentation)
            if p.shelf.id == far or not sched.shelves[far].carried and far not in sched.itinerary:
                sched.confirm_pick(port, now)

    return operate


@pytest.mark.parametrize("slotting", [False, True])
def test_the_shelf_leaving_a_port_takes_the_nearer_home_of_a_shelf_at_a_port(slotting):
    fleet, near, far = _two_shelves(slotting)
    sched = fleet.scheduler
    home = {s: sched.shelves[s].home for s in (near, far)}
    fleet.run_until(lambda: len(sched.picked_at) == 2 and all(
        not sched.shelves[s].carried and s not in sched.itinerary for s in (near, far)), 1200,
        each=_serve_far_first(fleet, far))
    fleet.run_until(lambda: all(sched.shelves[s].at_home for s in (near, far)), 1500)
    expected = {near: home[far], far: home[near]} if slotting else home
    assert {s: sched.shelves[s].home for s in (near, far)} == expected
    # the emulator's shelves stand where the scheduler says, one per cell
    assert {s: fleet.world.stored_shelf_at(cell) for s, cell in expected.items()} == {near: near, far: far}
    homes = [s.home for s in sched.shelves.values()]
    assert len(set(homes)) == len(homes)
    assert fleet.world.collisions == []


def test_the_home_of_a_shelf_waiting_beyond_a_full_ports_slots_is_not_given_away():
    """A robot beyond a full port's slots waits where it lifted its shelf, and drives back
    there when traffic pushes it aside: its shelf's home is not free. Given away, another
    shelf was set down on it and the loaded robot, granted the cell, stood locked out of it
    (the west of the medium floor gridlocked within the hour)."""
    fleet = Fleet({"r1": Cell(2, 3), "r2": Cell(4, 3), "r3": Cell(6, 3), "r4": Cell(8, 3)},
                  config=SchedulerConfig(slotting=True))
    sched = fleet.scheduler
    shelves = sorted(fleet.inventory.shelves(), key=lambda s: (s.home.x, s.home.y))
    near, leaving = shelves[0], shelves[-1]
    queue = sched.queues["pick-1"]
    for robot_id in ("r2", "r3", "r4"):  # the port's three slots are taken
        queue.join(robot_id)
    waiting = RobotJob("r1", Stage.QUEUE, 0.0, Task(id="T1", kind=TaskKind.FETCH_SHELF, target="pick-1", created=0.0, shelf=near.id),
                       station="pick-1")
    sched.jobs["r1"] = waiting
    assert queue.join("r1") is None  # beyond the slots
    home = {s.id: s.home for s in (near, leaving)}
    sched._slot(leaving, "pick-1")
    assert {s.id: s.home for s in (near, leaving)} == home
    queue.leave("r2")  # a slot frees: r1 moves into the line, its shelf's home stands empty
    assert queue.slot_of("r1") is not None
    sched._slot(leaving, "pick-1")
    assert (near.home, leaving.home) == (home[leaving.id], home[near.id])
