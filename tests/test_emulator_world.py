"""Building a world: shelves at their homes, robots on codes, clear errors for bad input."""

from __future__ import annotations

import pytest

from emulator_kit import Bench
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from maps import Cell, CellKind, Heading


def test_shelves_stand_on_every_storage_cell_by_default() -> None:
    bench = Bench()
    world = bench.world
    storage = bench.map.cells_of(CellKind.STORAGE)
    assert sorted(world.shelf_ids) == sorted(f"shelf-{c.x}-{c.y}" for c in storage)
    for cell in storage:
        shelf = world.shelf(world.stored_shelf_at(cell))
        assert (shelf.x, shelf.y) == bench.map.position(cell)
        assert shelf.theta == 0.0 and shelf.carried_by is None and shelf.weight_kg == 250.0


def test_explicit_shelves_replace_the_default() -> None:
    bench = Bench()
    world = World(bench.map, SimulatedClock(), shelves={"A1": Cell(3, 4), "B7": Cell(2, 2)}, shelf_weight_kg=90.0)
    assert world.shelf_ids == ["A1", "B7"]
    assert world.stored_shelf_at(Cell(2, 2)) == "B7" and world.stored_shelf_at(Cell(4, 4)) is None
    assert world.shelf("A1").weight_kg == 90.0


@pytest.mark.parametrize("build, message", [
    (lambda b: World(b.map, SimulatedClock(), dt=0.0), "physics step must be positive"),
    (lambda b: World(b.map, SimulatedClock(), shelves={"X": Cell(0, 0)}), "not a traversable cell"),
    (lambda b: b.world.add_shelf("shelf-3-4", Cell(2, 2)), "already in the world"),
    (lambda b: b.world.add_shelf("new", Cell(3, 4)), "shelf 'shelf-3-4' stands there"),
    (lambda b: b.world.add_shelves({"p": Cell(2, 2), "q": Cell(2, 2)}), "shelf 'p' stands there"),
    (lambda b: b.world.add_robot("r", Cell(0, 0)), "not a traversable cell"),
    (lambda b: (b.world.add_robot("r", Cell(1, 1)), b.world.add_robot("r", Cell(2, 1))), "already in the world"),
    (lambda b: b.world.add_robot("r", Cell(1, 1), charge=1.5), "charge must be in"),
    (lambda b: b.world.set_shelf_weight("shelf-3-4", -1), "must not be negative"),
])
def test_bad_building_input_is_refused_with_a_reason(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(Bench())


def test_unknown_ids_name_themselves() -> None:
    bench = Bench()
    with pytest.raises(KeyError, match="no robot 'ghost'"):
        bench.world.robot("ghost")
    with pytest.raises(KeyError, match="no shelf 'nope'"):
        bench.world.shelf("nope")


def test_robots_are_localised_where_placed_and_report_it() -> None:
    bench = Bench()
    unit = bench.world.add_robot("r", Cell(4, 3), Heading.SOUTH, charge=0.7)
    status = unit.status()
    assert status.localised and status.cell == Cell(4, 3) and status.heading is Heading.SOUTH
    assert status.last_qr == bench.map.qr_id(Cell(4, 3))
    assert status.charge == 0.7 and status.state == "idle" and status.errors == ()
    assert (bench.world.x[0], bench.world.y[0]) == bench.map.position(Cell(4, 3))
