"""Port queues: first come, first served, and everybody moves up when the working cell frees."""

import pytest

from firmware_emulator.faults import MotorStall
from fleet.domain import Order, OrderLine
from fleet.scheduler.stations import PortQueue
from fleet.scheduler.workflows import Stage
from maps.model import Cell
from scheduler_kit import Fleet, alcove_map


def test_slots_run_from_the_working_cell_back_to_the_queue_entry():
    queue = PortQueue.of(alcove_map().station("pick-1"))
    # the map lists the queue from its entry (0, 2) to the cell next to the working cell (0, 3)
    assert queue.lines == ((Cell(0, 4), Cell(0, 3), Cell(0, 2)),)


def test_first_come_first_served_and_move_up():
    queue = PortQueue.of(alcove_map().station("pick-1"))
    assert queue.join("r1") == Cell(0, 4)
    assert queue.join("r2") == Cell(0, 3)
    assert queue.join("r3") == Cell(0, 2)
    assert queue.join("r4") is None  # beyond the slots: waits where it is
    moves = queue.leave("r1")
    assert moves == {"r2": Cell(0, 4), "r3": Cell(0, 3), "r4": Cell(0, 2)}
    assert queue.robots == ["r2", "r3", "r4"]
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
    assert set(queue.lines[0][:2]) <= seen_at_slot[last]
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


# --- a port with two working cells ---------------------------------------------------------
# pick-1 of the twin alcove floor: working cells (0, 4) and (0, 5) side by side; the first
# queue comes down from (0, 2), the second up from (0, 7).
FIRST = (Cell(0, 4), Cell(0, 3), Cell(0, 2))
SECOND = (Cell(0, 5), Cell(0, 6), Cell(0, 7))


def twin_queue(*robots: str) -> PortQueue:
    queue = PortQueue.of(alcove_map(twin=True).station("pick-1"))
    for robot in robots:
        queue.join(robot)
    return queue


def test_each_working_cell_has_its_own_line_of_slots():
    queue = twin_queue()
    assert queue.lines == (FIRST, SECOND)
    assert queue.working == (Cell(0, 4), Cell(0, 5))
    assert queue.capacity == 6


def test_a_robot_joins_the_line_with_the_most_free_slots():
    queue = twin_queue()
    # equal lines: the first; then always the emptier one, so the lines fill in turn
    slots = [queue.join(r) for r in ("r1", "r2", "r3", "r4", "r5", "r6", "r7")]
    assert slots == [FIRST[0], SECOND[0], FIRST[1], SECOND[1], FIRST[2], SECOND[2], None]
    assert len(queue) == 7 and queue.robots == ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    # a line that moved up takes the next robot, even when it is the second line
    queue = twin_queue("r1", "r2", "r3", "r4")
    queue.leave("r2")  # the second line now holds r4 only
    assert queue.join("r5") == SECOND[1]


def test_leaving_moves_up_only_that_line():
    queue = twin_queue("r1", "r2", "r3", "r4", "r5", "r6")
    assert queue.leave("r2") == {"r4": SECOND[0], "r6": SECOND[1]}
    assert [queue.slot_of(r) for r in ("r1", "r3", "r5")] == list(FIRST)  # the first line did not move
    assert queue.leave("r3") == {"r5": FIRST[1]}  # from the middle: only those behind it


@pytest.mark.parametrize(("done", "other"), [("r1", "r2"), ("r2", "r1")])
def test_a_robot_beyond_all_slots_takes_the_slot_either_line_frees(done: str, other: str):
    line = {"r1": FIRST, "r2": SECOND}  # r1 and r2 are at the working cells
    queue = twin_queue("r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8")
    assert queue.slot_of("r7") is queue.slot_of("r8") is None
    moves = queue.leave(done)
    # first come, first served: r7 waited longer than r8, so r7 takes the freed slot
    assert moves.get("r7") == line[done][2] and queue.slot_of("r8") is None, \
        f"r7 waited longest, but the moves are {moves}"
    assert len(moves) == 3  # the two behind `done` in its line moved up, and r7
    assert queue.leave(other)["r8"] == line[other][2]  # the next slot, in the other line, goes to r8


def test_each_line_settles_to_who_stands_in_it_first():
    queue = twin_queue("r1", "r2", "r3", "r4", "r5", "r6", "r7")
    # the first line was given r1, r3, r5 and the second r2, r4, r6; r5 and r6 got to
    # the working cells first, r3 stands next to its working cell, r1, r2, r4 are on the way
    cells = {"r1": Cell(9, 3), "r2": Cell(9, 5), "r3": FIRST[1], "r4": Cell(5, 6), "r5": FIRST[0],
             "r6": SECOND[0], "r7": Cell(12, 2)}
    moves = queue.settle(cells)
    assert [queue.slot_of(r) for r in ("r5", "r3", "r1")] == list(FIRST)
    assert [queue.slot_of(r) for r in ("r6", "r2", "r4")] == list(SECOND)
    assert moves == {"r5": FIRST[0], "r1": FIRST[2], "r6": SECOND[0], "r2": SECOND[1], "r4": SECOND[2]}
    assert queue.slot_of("r7") is None  # still beyond every slot
    assert queue.settle(cells) == {}


class SlowPicker:
    """The operator at the twin port, who works each shelf `seconds` long, and what the
    tests watch each tick: the order robots joined the port's queue and were presented
    in, where, who stood by at a working cell meanwhile, and how many were worked at once."""

    def __init__(self, fleet: Fleet, seconds: float) -> None:
        self.fleet, self.seconds = fleet, seconds
        self.queue = fleet.scheduler.queues["pick-1"]
        self.joined: list[str] = []
        self.presented: list[str] = []
        self.presented_at: list[Cell] = []
        self.standing_by: set[str] = set()
        self.most_at_port = 0  # robots in the present stage at the port at once
        self.most_waiting = 0  # robots beyond every slot at once
        self._done_at: dict[str, float] = {}

    def __call__(self, now: float) -> None:
        scheduler, robots = self.fleet.scheduler, self.fleet.motion.robots
        self.joined.extend(r for r in self.queue.robots if r not in self.joined)
        self.most_waiting = max(self.most_waiting, len(self.queue) - self.queue.capacity)
        at_port = [j for j in scheduler.jobs.values() if j.stage is Stage.PRESENT and j.station == "pick-1"]
        self.most_at_port = max(self.most_at_port, len(at_port))
        p = scheduler.presentations.get("pick-1")
        if p is None:
            return
        robot = p.shelf.robot
        if robot not in self.presented:
            self.presented.append(robot)
            self.presented_at.append(robots[robot].cell)
            self._done_at[robot] = now + self.seconds
        self.standing_by.update(r for r in self.queue.robots if r != robot and robots[r].cell in self.queue.working)
        if now >= self._done_at[robot]:
            scheduler.confirm_pick("pick-1", now)

    def gaps(self) -> list[float]:
        """Seconds the operator waited between one shelf's departure and the next one's start."""
        records = [r for r in self.fleet.scheduler.presented if r.station_id == "pick-1"]
        return [b.start - a.end for a, b in zip(records, records[1:])]


def test_at_two_working_cells_the_next_shelf_stands_by_and_is_presented_the_moment_the_last_departs():
    # four shelves for one order at the twin port, a slow operator: while one shelf is
    # worked the next drives up to the other working cell and waits there
    stock = {"S1": {"A": 5}, "S2": {"B": 5}, "S3": {"C": 5}, "S4": {"D": 5}}
    robots = {"r1": Cell(2, 2), "r2": Cell(4, 2), "r3": Cell(6, 2), "r4": Cell(8, 2)}
    fleet = Fleet(robots, stock=stock, order_shelves=2, twin=True)
    fleet.scheduler.receive_order(Order(id="O1", lines=tuple(OrderLine(sku, 1) for sku in "ABCD"), created=0.0))
    picker = SlowPicker(fleet, 20.0)
    fleet.run_until(lambda: "O1" in fleet.scheduler.picked_at, 600, each=picker)
    assert len(picker.presented) == 4 and picker.presented == picker.joined  # first come, first served
    assert set(picker.presented_at) == set(picker.queue.working)  # both working cells were used
    assert set(picker.presented[1:]) <= picker.standing_by  # each next shelf stood by at the other working cell
    gaps = picker.gaps()
    assert len(gaps) == 3 and all(0.0 <= gap < 1.0 for gap in gaps), f"the operator waited {gaps} s between shelves"
    assert picker.most_at_port == 1  # never two shelves worked at once at the port
    assert fleet.world.collisions == []


def test_a_twin_port_serves_more_shelves_than_it_has_slots_one_at_a_time():
    # ten shelves (two per SKU) for one order, ten robots: four wait beyond the six slots
    stock = {f"S{i + 1}": {"ABCDE"[i // 2]: 1} for i in range(10)}
    robots = {f"r{i + 1}": cell for i, cell in enumerate(Cell(x, y) for y in (2, 5) for x in range(2, 16, 3))}
    fleet = Fleet(robots, stock=stock, order_shelves=2, twin=True)
    fleet.scheduler.receive_order(Order(id="O1", lines=tuple(OrderLine(sku, 2) for sku in "ABCDE"), created=0.0))
    picker = SlowPicker(fleet, 10.0)
    fleet.run_until(lambda: "O1" in fleet.scheduler.picked_at, 900, each=picker)
    assert picker.most_waiting > 0  # some robots did wait beyond every slot
    assert sorted(picker.presented) == sorted(robots)  # every shelf was worked, once
    assert picker.most_at_port == 1 and all(gap >= 0.0 for gap in picker.gaps())
    assert fleet.world.collisions == []


def test_when_the_robot_being_worked_faults_the_shelf_standing_by_is_presented():
    stock = {"S1": {"A": 5}, "S2": {"B": 5}}
    fleet = Fleet({"r1": Cell(2, 2), "r2": Cell(4, 2)}, stock=stock, order_shelves=2, twin=True)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1), OrderLine("B", 1)), created=0.0))
    queue = sched.queues["pick-1"]

    def standing_by() -> bool:
        p = sched.presentations.get("pick-1")
        return p is not None and any(fleet.motion.robots[r].cell in queue.working and r != p.shelf.robot
                                     for r in queue.robots)

    fleet.run_until(standing_by, 600)
    worked = sched.presentations["pick-1"].shelf.robot
    fleet.world.inject(MotorStall(worked, duration=10_000.0))
    fleet.run_until(lambda: worked in sched.down, fleet.clock.now() + 30)
    p = sched.presentations.get("pick-1")
    assert p is not None and p.shelf.robot != worked  # the operator goes on with the other shelf
    assert fleet.world.collisions == []


def test_a_robot_is_on_its_working_cell_only_at_the_front_of_its_own_line():
    queue = twin_queue("r1", "r2", "r3")  # r1 and r3 in the first line, r2 in the second
    assert queue.on_working_cell("r1", FIRST[0]) and queue.on_working_cell("r2", SECOND[0])
    assert not queue.on_working_cell("r1", SECOND[0])  # the other line's working cell
    assert not queue.on_working_cell("r3", FIRST[1])  # its slot, but a queue cell
    assert not queue.on_working_cell("r3", FIRST[0])  # not its slot: r1 is served first
