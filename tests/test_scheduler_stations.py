"""Port queues: first come, first served, and everybody moves up when the working cell frees."""

import pytest

from fleet.domain import Order, OrderLine
from fleet.scheduler.stations import PortQueue
from fleet.scheduler.workflows import Stage
from maps.model import Cell
from scheduler_kit import Fleet, alcove_map


def test_slots_run_from_the_working_cell_back_to_the_queue_entry():
    queue = PortQueue.of(alcove_map().station("pick-1"))
    # the map lists the queue from its entry (0, 2) to the cell next to the working cell (0, 3)
    assert queue.slots == (Cell(0, 4), Cell(0, 3), Cell(0, 2))


def test_first_come_first_served_and_move_up():
    queue = PortQueue.of(alcove_map().station("pick-1"))
    assert queue.join("r1") == Cell(0, 4)
    assert queue.join("r2") == Cell(0, 3)
    assert queue.join("r3") == Cell(0, 2)
    assert queue.join("r4") is None  # beyond the slots: waits where it is
    moves = queue.leave("r1")
    assert moves == {"r2": Cell(0, 4), "r3": Cell(0, 3), "r4": Cell(0, 2)}
    assert queue.first() == "r2"
    # leaving from the middle moves up only those behind
    assert queue.leave("r3") == {"r4": Cell(0, 3)}
    with pytest.raises(ValueError, match="already in the queue"):
        queue.join("r2")
    with pytest.raises(ValueError, match="not in the queue"):
        queue.leave("r9")


def test_robots_are_presented_in_queue_order_and_move_up_in_the_warehouse():
    # three shelves for one order at pick-1: the robots queue and each moves up in turn
    stock = {"S1": {"A": 5}, "S2": {"B": 5}, "S3": {"C": 5}}
    fleet = Fleet({"r1": Cell(2, 2), "r2": Cell(4, 2), "r3": Cell(6, 2)}, stock=stock, order_shelves=2)
    fleet.scheduler.receive_order(Order(id="O1", lines=(OrderLine("A", 1), OrderLine("B", 1), OrderLine("C", 1)),
                                        created=0.0))
    queue = fleet.scheduler.queues[next(p for p, w in fleet.scheduler.put_wall.items() if w)]
    joined: list[str] = []
    presented: list[str] = []
    seen_at_slot: dict[str, set] = {}
    busy_until = {}

    def operator(now: float) -> None:
        for robot in queue.robots:
            if robot not in joined:
                joined.append(robot)
            seen_at_slot.setdefault(robot, set()).add(fleet.motion.robots[robot].cell)
        p = fleet.scheduler.presentations.get(queue.station_id)
        if p is None:
            return
        robot = p.shelf.robot
        if robot not in presented:
            presented.append(robot)
            busy_until[robot] = now + 20.0  # a slow operator, so the others have to queue
        if now >= busy_until[robot]:
            fleet.scheduler.confirm_pick(queue.station_id, now)

    fleet.run_until(lambda: "O1" in fleet.scheduler.picked_at, 600, each=operator)
    assert presented == joined and len(presented) == 3
    last = presented[-1]
    # the last robot waited in the queue and moved up through the slots to the working cell
    assert {queue.slots[0], queue.slots[1]} <= seen_at_slot[last]
    assert fleet.world.collisions == []
    assert all(job.stage is not Stage.PRESENT for job in fleet.scheduler.jobs.values())


def test_the_queue_settles_to_who_stands_in_it_first():
    queue = PortQueue.of(alcove_map().station("pick-1"))
    for robot in ("r1", "r2", "r3", "r4"):
        queue.join(robot)
    # r3 got to the working cell first and r1 is still on its way: r3 is served first,
    # r2 keeps the cell it stands on, r1 and r4 queue behind them
    cells = {"r1": Cell(9, 3), "r2": Cell(0, 3), "r3": Cell(0, 4), "r4": Cell(5, 5)}
    moves = queue.settle(cells)
    assert queue.robots == ["r3", "r2", "r1", "r4"]
    assert moves == {"r3": Cell(0, 4), "r1": Cell(0, 2)}  # r4 still waits beyond the slots
    assert queue.settle(cells) == {}
