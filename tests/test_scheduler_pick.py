"""Pick: pick-to-light, short picks re-planned from other shelves, chaining between ports,
order shelves to packing."""

from fleet.domain import Order, OrderLine, OrderStatus
from fleet.scheduler.terminals import PickPresentation
from fleet.scheduler.workflows import SchedulerConfig
from maps.model import Cell
from scheduler_kit import Fleet

ROBOTS = {"r1": Cell(2, 3), "r2": Cell(4, 3), "r3": Cell(6, 3)}


def _lifts(fleet: Fleet, shelf_id: str) -> int:
    return sum(1 for r in fleet.scheduler.presented if r.shelf_id == shelf_id)


def test_pick_to_light_shows_bin_box_item_and_quantity_and_confirm_moves_on():
    fleet = Fleet(ROBOTS, stock={"S1": {"A": 10, "B": 4}}, order_shelves=2)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 2), OrderLine("B", 1)), created=0.0))
    fleet.run_until(lambda: bool(sched.presentations), 600)
    port, p = next(iter(sched.presentations.items()))
    assert isinstance(p, PickPresentation)
    lit = p.lit
    assert (lit.bin_label, lit.box.label, lit.sku, lit.name, lit.quantity) == ("S1-L1-B1", "BOX-O1", "A", "apples", 2)
    sched.confirm_pick(port, fleet.clock.now())
    assert p.lit.sku == "B" and p.lit.bin_label == "S1-L1-B2"
    assert fleet.inventory.stock("A") == 8
    sched.confirm_pick(port, fleet.clock.now())
    assert port not in sched.presentations  # the shelf left when its lines were done
    assert sched.orders["O1"].status is OrderStatus.PICKED
    # the complete order shelf goes to packing and comes back empty
    fleet.run_until(lambda: sched.orders["O1"].status is OrderStatus.PACKED
                    and all(s.at_home for s in fleet.order_shelves), 900)
    assert all(not s.boxes() for s in fleet.order_shelves)
    assert fleet.world.collisions == []


def test_short_pick_corrects_stock_and_replans_from_another_shelf():
    # both shelves are booked with 8 x A; the first one called turns out to hold only 1
    fleet = Fleet(ROBOTS, stock={"S1": {"A": 8}, "S2": {"A": 8}}, order_shelves=2)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 3),), created=0.0))
    fleet.run_until(lambda: bool(sched.presentations), 600)
    port, p = next(iter(sched.presentations.items()))
    short_shelf = p.shelf.id
    other = "S2" if short_shelf == "S1" else "S1"
    assert p.lit.quantity == 3
    short = sched.confirm_pick(port, fleet.clock.now(), quantity=1)
    assert (short.missing, short.written_off) == (2, 7)
    assert fleet.inventory.shelf(short_shelf).stock() == {}
    assert sched.written_off["A"] == 7
    assert "short pick" in sched.alarms[-1][1]
    fleet.run_until(lambda: "O1" in sched.picked_at, 900, each=fleet.operate)
    assert fleet.inventory.shelf(other).stock() == {"A": 6}
    assert [r.shelf_id for r in sched.presented] == [short_shelf, other]
    box = fleet.order_shelves[0].boxes() or fleet.order_shelves[1].boxes()
    assert box[0].picked == {"A": 3}


def test_a_shelf_needed_at_two_ports_is_chained_without_going_home():
    config = SchedulerConfig(orders_per_round=1)
    fleet = Fleet({"r1": Cell(2, 3)}, stock={"S1": {"A": 10}}, order_shelves=2, config=config)
    sched = fleet.scheduler
    for i in (1, 2):
        sched.receive_order(Order(id=f"O{i}", lines=(OrderLine("A", 1),), created=0.0))
    carrier: list[tuple[float, str | None]] = []

    def watch(now: float) -> None:
        fleet.operate(now)
        carrier.append((now, fleet.world.shelf("S1").carried_by))

    fleet.run_until(lambda: len(sched.picked_at) == 2, 900, each=watch)
    first, second = [r for r in sched.presented if r.shelf_id == "S1"]
    assert {first.station_id, second.station_id} == {"pick-1", "pick-2"}
    # one lift: from the first presentation to the second the shelf stayed on the robot
    between = {robot for t, robot in carrier if first.start <= t <= second.end}
    assert len(between) == 1 and None not in between
    assert sched.failed_errands == []
    assert fleet.world.collisions == []


def test_while_ports_are_full_the_shelf_serving_more_lines_is_fetched_first_but_not_in_fcfs():
    """A shelf with one line waits and gathers the lines of orders released meanwhile
    (lines per presentation); the first-come-first-served baseline keeps arrival order."""
    from fleet.scheduler.batching import Batching

    for batching, expected in ((Batching.GREEDY, ["S2", "S1"]), (Batching.FCFS, ["S1", "S2"])):
        fleet = Fleet({}, stock={"S1": {"A": 5}, "S2": {"B": 5, "C": 5}}, order_shelves=2,
                      config=SchedulerConfig(batching=batching, release_every_s=1.0))
        sched = fleet.scheduler
        sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
        fleet.run_until(lambda: "S1" in sched.fetches, 10)
        sched.receive_order(Order(id="O2", lines=(OrderLine("B", 1), OrderLine("C", 1)), created=fleet.clock.now()))
        fleet.run_until(lambda: "S2" in sched.fetches, 20)
        assert [s for s, _ in sched._fetch_order(fleet.clock.now(), set())] == expected, batching


def test_a_presented_robot_turns_to_the_working_cells_exit_while_the_shelf_is_worked():
    """Turning after the shelf was done kept the port empty a second longer at every swap."""
    from maps.model import Heading

    fleet = Fleet(ROBOTS, stock={"S1": {"A": 10}}, order_shelves=2)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 2),), created=0.0))
    fleet.run_until(lambda: bool(sched.presentations), 600)
    port, p = next(iter(sched.presentations.items()))
    robot = p.shelf.robot
    (working,) = sched.queues[port].working
    assert fleet.motion.robots[robot].heading is not Heading.EAST  # it came down the line
    start = fleet.clock.now()
    fleet.run_until(lambda: fleet.clock.now() >= start + 10, start + 20)
    # the ports are on the west wall: the way out of a working cell is east, into the aisle
    assert fleet.motion.robots[robot].heading is Heading.EAST == Heading(fleet.world.robot(robot).heading)
    assert fleet.motion.robots[robot].cell == working and port in sched.presentations  # held there meanwhile
    assert fleet.world.shelf(p.shelf.id).carried_by == robot
    sched.confirm_pick(port, fleet.clock.now())
    fleet.run_until(lambda: fleet.inventory.shelf("S1").at_home, 600)
    assert fleet.world.collisions == []


def test_an_order_released_while_a_shelf_is_presented_is_served_by_that_shelf():
    """Lines per presentation: the shelf standing at the port serves an order released
    to the port meanwhile, instead of a second trip for the same shelf."""
    fleet = Fleet(ROBOTS, stock={"S1": {"A": 3}}, order_shelves=4)  # two per port: a round goes to an empty one
    fleet.inventory.put(fleet.inventory.shelf("S1").bins[1].label, "A", 2)  # 3 + 2 units in two bins
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 2),), created=0.0))
    fleet.run_until(lambda: bool(sched.presentations), 600)
    port, p = next(iter(sched.presentations.items()))
    sched.receive_order(Order(id="O2", lines=(OrderLine("A", 3),), created=fleet.clock.now()))
    fleet.run_until(lambda: sched.orders["O2"].status is OrderStatus.PICKING, fleet.clock.now() + 120)
    assert sched.presentations.get(port) is p  # the operator has not confirmed yet: still there
    # O1's 2 units from the fuller bin are not picked yet: O2 takes the 1 left there and
    # the 2 of the other bin, never 3 from a bin that holds 3 in all
    pairs = [(pair.box.order_id, pair.bin_label, pair.quantity) for pair in p.pairs]
    assert pairs == [("O1", "S1-L1-B1", 2), ("O2", "S1-L1-B1", 1), ("O2", "S1-L1-B2", 2)]
    for _ in pairs:
        sched.confirm_pick(port, fleet.clock.now())
    assert port not in sched.presentations
    assert {"O1", "O2"} <= set(sched.picked_at) and _lifts(fleet, "S1") == 1
    assert fleet.inventory.stock("A") == 0
    assert fleet.world.collisions == []
