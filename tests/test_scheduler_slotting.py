"""Slotting: a shelf leaving a port takes a free home nearer that port (one of a shelf
now at a port, whose cell stands empty), and that shelf gets its home in exchange."""

import pytest

from fleet.domain import Order, OrderLine
from fleet.scheduler.terminals import PickPresentation
from fleet.scheduler.workflows import SchedulerConfig
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
