"""Stow: a scan calls a shelf, put-to-light books goods only on the lit bin, and the shelf
leaves only when the confirmed count and the weight match the plan."""

import pytest

from fleet.domain import InboundLine, InboundNote, InboundStatus
from fleet.scheduler.terminals import ScanRefused, may_depart, plan_puts, scan_bin, stow_presentation
from fleet.scheduler.workflows import Stage
from maps.model import Cell
from scheduler_kit import Fleet


def _at_stow_port(fleet: Fleet, port: str = "stow-1") -> None:
    fleet.run_until(lambda: port in fleet.scheduler.presentations, 600)


def test_a_wrong_bin_scan_is_refused_and_moves_nothing():
    fleet = Fleet({"r1": Cell(12, 3)}, stock={"S1": {"A": 4}})
    inventory = fleet.inventory
    shelf = inventory.shelf("S1")
    presentation = stow_presentation(inventory, "stow-1", shelf, plan_puts(inventory, shelf, "A", 6, "IN1"), 0.0)
    lit = presentation.lit
    assert lit.bin_label == shelf.bins[0].label  # the bin already holding A is lit first
    before = inventory.stock_by_bin()
    wrong = shelf.bins[1].label
    with pytest.raises(ScanRefused, match=f"scanned bin '{wrong}', but the lit bin is {lit.bin_label}"):
        scan_bin(inventory, presentation, wrong)
    assert inventory.stock_by_bin() == before
    assert presentation.done == 0
    scan_bin(inventory, presentation, lit.bin_label)
    assert inventory.bin(lit.bin_label).quantity("A") == 10


def test_departure_needs_both_count_and_weight():
    fleet = Fleet({"r1": Cell(12, 3)}, stock={"S1": {"A": 4}})
    inventory = fleet.inventory
    shelf = inventory.shelf("S1")
    presentation = stow_presentation(inventory, "stow-1", shelf, plan_puts(inventory, shelf, "B", 3, "IN1"), 0.0)
    planned = presentation.planned_weight_kg
    assert planned == pytest.approx(shelf.total_weight_kg + 3 * 0.3)
    assert not may_depart(presentation, planned)  # nothing confirmed yet
    assert "0 of 3 units confirmed" in presentation.alarm
    scan_bin(inventory, presentation, presentation.lit.bin_label)
    assert not may_depart(presentation, planned + 1.0)  # count right, scale off by a kilo
    assert "scale reads" in presentation.alarm and "units confirmed" not in presentation.alarm
    assert may_depart(presentation, planned + 0.2)
    assert presentation.alarm == ""


def test_stow_in_the_warehouse_shelf_stays_on_weight_mismatch_then_goes_home():
    # S1 holds A with room: the scan calls S1 (it already holds the SKU), not an empty shelf
    fleet = Fleet({"r1": Cell(12, 3), "r2": Cell(10, 3)}, stock={"S1": {"A": 4}, "S2": {"B": 1}})
    sched = fleet.scheduler
    sched.receive_inbound(InboundNote(id="IN1", lines=(InboundLine("A", 5),), created=0.0))
    _at_stow_port(fleet)
    presentation = sched.presentations["stow-1"]
    assert presentation.shelf.id == "S1"
    now = fleet.clock.now()
    with pytest.raises(ScanRefused):
        sched.scan_bin("stow-1", "S2-L1-B1", now)
    assert fleet.inventory.stock("A") == 4
    sched.scan_bin("stow-1", presentation.lit.bin_label, now)
    assert fleet.inventory.stock("A") == 9
    assert not sched.depart_stow("stow-1", presentation.planned_weight_kg - 2.0, now)
    assert "stow-1" in sched.presentations  # it stays at the port
    assert "scale reads" in sched.alarms[-1][1]
    fleet.run_until(lambda: False if fleet.clock.now() < now + 5 else True, now + 10)
    assert sched.jobs[presentation.shelf.robot].stage is Stage.PRESENT
    assert sched.depart_stow("stow-1", presentation.planned_weight_kg, fleet.clock.now())
    fleet.run_until(lambda: fleet.inventory.shelf("S1").at_home, 600)
    assert sched.notes["IN1"].status is InboundStatus.STOWED
    assert fleet.world.shelf("S1").carried_by is None
    assert fleet.world.collisions == []


def test_goods_no_single_shelf_takes_are_split_over_shelves():
    # A is 0.5 L: a standard shelf holds about 2200 of it (1106 L), so 5000 need three shelves
    fleet = Fleet({"r1": Cell(12, 3), "r2": Cell(10, 3), "r3": Cell(8, 3)}, stock={"S1": {"A": 4}})
    sched = fleet.scheduler
    sched.receive_inbound(InboundNote(id="IN1", lines=(InboundLine("A", 5000),), created=0.0))
    fleet.run_until(lambda: sched.notes["IN1"].status is InboundStatus.STOWED, 3000, each=fleet.operate)
    assert fleet.inventory.stock("A") == 5004
    stowed_on = {r.shelf_id for r in sched.presented}
    assert "S1" in stowed_on and len(stowed_on) == 3
    assert fleet.world.collisions == []
