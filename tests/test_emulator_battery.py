"""Battery: drain with work, charge on a charger, refuse new motion when critical."""

from __future__ import annotations

import pytest

from drivers.commands import ActionKind
from drivers.events import ActionFailed, BatteryReport, ErrorRaised, JobFinished, JobRejected
from emulator_kit import Bench, act, job, line
from firmware_emulator.faults import BatteryDrop
from firmware_emulator.profile import DEFAULT_PROFILE as P
from maps import Cell, Heading

CAPACITY_J = P.battery_wh * 3600


def test_idle_drain_follows_the_idle_power() -> None:
    bench = Bench(dt=0.25)  # constant power: the drain is exact at any step
    bench.world.add_robot("r", Cell(1, 1), Heading.EAST, charge=0.8)
    bench.run(600)
    assert float(bench.world.soc[0]) == pytest.approx(0.8 - P.idle_w * 600 / CAPACITY_J, abs=1e-6)


def test_driving_drains_more_than_standing_and_loaded_driving_more_still() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("idle", Cell(1, 1), Heading.EAST)
    world.add_robot("empty", Cell(1, 2), Heading.EAST)
    world.add_robot("loaded", Cell(8, 4), Heading.EAST)
    world.send_job("empty", job("e", line(1, 2, 12, 2)))
    world.send_job("loaded", job("l", line(8, 4, 12, 4), actions={0: [act(ActionKind.LIFT, "up")]}))
    bench.run(20)
    used = {rid: 1.0 - float(world.soc[world.robot(rid).index]) for rid in ("idle", "empty", "loaded")}
    assert used["idle"] == pytest.approx(P.idle_w * 20 / CAPACITY_J, rel=1e-6)
    assert used["empty"] > used["idle"]
    assert used["loaded"] > used["idle"]
    # the 11 m empty run took t_run seconds of drive power on top of idle
    t_run = bench.last(JobFinished, "empty").time
    expected = (P.idle_w * 20 + P.drive_w * t_run) / CAPACITY_J
    assert used["empty"] == pytest.approx(expected, rel=0.02)


def test_charging_on_a_charger_raises_the_charge_and_reports_it() -> None:
    bench = Bench(dt=0.25)
    world = bench.world
    world.add_robot("r", Cell(11, 6), Heading.EAST, charge=0.3)
    world.send_job("r", job("j", [Cell(11, 6), Cell(12, 6)], actions={1: [act(ActionKind.START_CHARGING, "c")]}))
    bench.run(3)
    start = float(world.soc[0])
    assert world.charging[0]
    bench.run(600)
    gained = float(world.soc[0]) - start
    assert gained == pytest.approx((P.charge_w - P.idle_w) * 600 / CAPACITY_J, rel=1e-3)
    reports = bench.of(BatteryReport, "r")
    assert reports[-1].charging and reports[-1].charge > 0.45
    assert [r.charge for r in reports if r.charging] == sorted(r.charge for r in reports if r.charging)


def test_charging_away_from_a_charger_fails() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 1), Heading.EAST)
    bench.world.send_job("r", job("j", [Cell(1, 1)], actions={0: [act(ActionKind.START_CHARGING, "c")]}))
    assert "not a charger" in bench.last(ActionFailed, "r").reason
    assert not bench.world.charging[0]


def test_a_critical_battery_refuses_new_motion_but_may_charge_in_place() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(12, 6), Heading.EAST, charge=0.09)
    world.send_job("r", job("j", line(12, 6, 10, 6)))
    assert "battery critical" in bench.last(JobRejected, "r").reason
    world.send_job("r", job("c", [Cell(12, 6)], actions={0: [act(ActionKind.START_CHARGING, "c")]}))
    bench.run(120)
    assert float(world.soc[0]) > P.critical_charge
    assert world.send_job("r", job("k", line(12, 6, 10, 6)))


def test_battery_drop_fault_raises_critical_and_empty_stops_the_robot() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST, charge=0.5)
    world.send_job("r", job("j", line(1, 2, 12, 2)))
    bench.run(2)
    world.inject(BatteryDrop("r", 0.45))
    assert float(world.soc[0]) == pytest.approx(0.05, abs=1e-3)
    assert "battery_critical" in [e.code for e in bench.of(ErrorRaised, "r")]
    bench.run(1)
    assert world.v[0] > 0  # critical refuses new motion; the job in hand goes on
    world.inject(BatteryDrop("r", 1.0))
    assert world.v[0] == 0.0
    x = float(world.x[0])
    bench.run(5)
    assert float(world.x[0]) == x
    assert "battery_empty" in [e.code for e in world.robot("r").status().errors]
