"""Shelf choice for stow and pick, and robot choice for tasks."""

import pytest

from fleet.domain.inventory import Inventory
from fleet.domain.shelf import InventoryShelf, ShelfSpec
from fleet.domain.sku import Catalogue, Sku
from fleet.scheduler.robot_choice import FreeRobot, OpenTask, assign_robots
from fleet.scheduler.shelf_choice import cover_lines, plan_stow, sku_shelves
from maps.model import Cell

SPEC = ShelfSpec(levels=1, bins_per_level=1)


def manhattan(a: Cell, b: Cell) -> float:
    return abs(a.x - b.x) + abs(a.y - b.y)


def _inventory(shelf_cells: dict[str, Cell]) -> Inventory:
    catalogue = Catalogue([Sku("A", "apple", 1.0, 0.2), Sku("B", "bolt", 0.5, 0.1), Sku("T", "tiny", 0.1, 0.01, "small")])
    inv = Inventory(catalogue)
    for shelf_id, cell in shelf_cells.items():
        inv.add_shelf(InventoryShelf.build(shelf_id, cell, SPEC))
    return inv


def test_stow_prefers_a_shelf_already_holding_the_sku_with_room():
    inv = _inventory({"S1": Cell(1, 1), "S2": Cell(9, 9), "S3": Cell(2, 2)})
    inv.put(inv.shelf("S2").bins[0].label, "A", 10)
    plan = plan_stow(inv, "A", 5, port=Cell(0, 0), distance=manhattan)
    assert [p.shelf_id for p in plan.parts] == ["S2"], "far shelf holding the SKU beats a near empty one"
    assert not plan.split and plan.unplaced == 0


def test_stow_falls_back_to_the_nearest_empty_shelf_of_the_class():
    inv = _inventory({"S1": Cell(5, 5), "S2": Cell(1, 0), "S3": Cell(2, 2)})
    inv.put(inv.shelf("S3").bins[0].label, "B", 1)  # S3 holds another SKU: not empty
    plan = plan_stow(inv, "A", 5, port=Cell(0, 0), distance=manhattan)
    assert [p.shelf_id for p in plan.parts] == ["S2"]


def test_stow_splits_what_no_single_shelf_takes_and_says_what_is_left():
    inv = _inventory({"S1": Cell(1, 1), "S2": Cell(2, 2)})
    room = inv.shelf_fits("S1", "A")
    plan = plan_stow(inv, "A", 2 * room + 3, port=Cell(0, 0), distance=manhattan)
    assert plan.split
    assert sum(p.quantity for p in plan.parts) == 2 * room
    assert plan.unplaced == 3
    assert "no shelf" in plan.reason and "A" in plan.reason


def test_stow_with_no_shelf_of_the_class_gives_a_reason():
    inv = _inventory({"S1": Cell(1, 1)})
    plan = plan_stow(inv, "T", 4, port=Cell(0, 0), distance=manhattan)
    assert plan.parts == [] and plan.unplaced == 4
    assert "'small'" in plan.reason


def test_cover_lines_uses_few_shelves_and_prefers_shelves_on_their_way():
    where = {"A": ["S1", "S2"], "B": ["S2", "S3"], "C": ["S3"]}
    assert sorted(cover_lines(["A", "B", "C"], where)) == ["S2", "S3"]
    assert cover_lines(["A"], where, preferred=["S1"]) == ["S1"]
    with pytest.raises(ValueError, match="Z"):
        cover_lines(["Z"], where)


def test_cover_lines_takes_the_nearer_of_two_shelves_serving_as_many_lines():
    where = {"A": ["S1", "S2"], "B": ["S3"]}
    assert cover_lines(["A", "B"], where, distance={"S1": 30.0, "S2": 4.0, "S3": 9.0}) == ["S2", "S3"]
    assert cover_lines(["A", "B"], where, distance={"S1": 4.0, "S2": 30.0, "S3": 9.0}) == ["S1", "S3"]
    # lines served first, then fewer bookings, then distance
    assert cover_lines(["A", "B"], {"A": ["S1", "S2"], "B": ["S2"]}, distance={"S1": 1.0, "S2": 50.0}) == ["S2"]
    assert cover_lines(["A"], where, booked={"S2": 1}, distance={"S1": 30.0, "S2": 4.0}) == ["S1"]


def test_sku_shelves_lists_shelves_by_stock():
    inv = _inventory({"S1": Cell(1, 1), "S2": Cell(2, 2)})
    inv.put(inv.shelf("S1").bins[0].label, "A", 2)
    inv.put(inv.shelf("S2").bins[0].label, "A", 7)
    assert sku_shelves(inv, ["A", "B"]) == {"A": ["S2", "S1"], "B": []}


def test_optimal_assignment_beats_greedy_when_one_robot_is_near_two_shelves():
    robots = [FreeRobot("r1", Cell(5, 0), 1.0), FreeRobot("r2", Cell(0, 0), 1.0)]
    tasks = [OpenTask("t1", Cell(4, 0)), OpenTask("t2", Cell(9, 0))]
    greedy = assign_robots(tasks, robots, manhattan, optimal=False)
    best = assign_robots(tasks, robots, manhattan, optimal=True)

    def total(a):
        cells = {r.robot_id: r.cell for r in robots}
        return sum(manhattan(cells[a[t.task_id]], t.cell) for t in tasks)

    assert total(best) < total(greedy)
    assert best == {"t1": "r2", "t2": "r1"}


def test_battery_counts_and_critical_robots_take_nothing():
    tasks = [OpenTask("t1", Cell(3, 0))]
    robots = [FreeRobot("low", Cell(3, 1), 0.05), FreeRobot("ok", Cell(3, 4), 0.9)]
    assert assign_robots(tasks, robots, manhattan) == {"t1": "ok"}
    robots = [FreeRobot("tired", Cell(3, 1), 0.3), FreeRobot("fresh", Cell(3, 2), 1.0)]
    assert assign_robots(tasks, robots, manhattan) == {"t1": "fresh"}


def test_more_tasks_than_robots_serves_the_most_urgent():
    tasks = [OpenTask("t1", Cell(0, 1)), OpenTask("urgent", Cell(9, 9), priority=2)]
    assert assign_robots(tasks, [FreeRobot("r", Cell(0, 0), 1.0)], manhattan) == {"urgent": "r"}


def test_cover_lines_prefers_the_shelf_with_fewer_ports_booked_before():
    """Two shelves hold the SKU; the one already touring three ports would keep this
    port waiting while the other stands idle in storage."""
    where = {"A": ["S1", "S2"]}
    assert cover_lines(["A"], where, booked={"S2": 3}) == ["S1"]
    assert cover_lines(["A"], where, booked={"S1": 3}) == ["S2"]
    # serving more lines still comes first
    assert cover_lines(["A", "B"], {"A": ["S1", "S2"], "B": ["S1"]}, booked={"S1": 3}) == ["S1"]
