"""Robots between jobs: battery thresholds, the charger queue, parking, and jobs taken
from robots that fault or are taken out of service."""

import pytest

from firmware_emulator.faults import MotorStall
from fleet.domain import Order, OrderLine
from fleet.scheduler.charging import BatteryPolicy, Chargers
from fleet.scheduler.workflows import SchedulerConfig, Stage
from maps.model import Cell, CellKind
from scheduler_kit import Fleet


def test_battery_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="critical <= low <= resume <= full"):
        BatteryPolicy(critical=0.3, low=0.2)
    policy = BatteryPolicy(critical=0.1, low=0.3, resume=0.5, full=0.9)
    assert policy.needs_charge(0.29) and not policy.needs_charge(0.3)
    assert not policy.may_work(0.1) and policy.may_work(0.11)
    assert not policy.may_leave(0.6, work_waiting=False) and policy.may_leave(0.6, work_waiting=True)
    assert not policy.may_leave(0.45, work_waiting=True) and policy.may_leave(0.9, work_waiting=False)


def test_charger_queue_is_first_come_first_served():
    a, b = Cell(0, 0), Cell(5, 0)
    chargers = Chargers((a, b))
    assert chargers.request("r1", lambda c: c.x) == a  # the nearest free charger
    assert chargers.request("r2", lambda c: c.x) == b
    assert chargers.request("r3", lambda c: c.x) is None
    assert chargers.request("r4", lambda c: c.x) is None
    assert chargers.waiting == ["r3", "r4"]
    assert chargers.release("r2") == ("r3", b)
    assert chargers.of("r3") == b and chargers.waiting == ["r4"]


def test_low_robots_charge_queue_for_a_charger_and_leave_when_full():
    policy = BatteryPolicy(critical=0.1, low=0.26, resume=0.26, full=0.265)
    fleet = Fleet({"r1": Cell(10, 3), "r2": Cell(8, 3), "r3": Cell(2, 3)}, config=SchedulerConfig(battery=policy),
                  charge=0.25)
    sched = fleet.scheduler
    chargers = set(fleet.map.cells_of(CellKind.CHARGER))
    assert len(chargers) == 2
    stages: dict[str, list[Stage]] = {r: [] for r in fleet.motion.robots}
    charged_at: dict[str, Cell] = {}

    def watch(now: float) -> None:
        for robot_id, job in sched.jobs.items():
            if not stages[robot_id] or stages[robot_id][-1] is not job.stage:
                stages[robot_id].append(job.stage)
            if fleet.world.charging[fleet.world.robots[robot_id].index]:
                charged_at[robot_id] = fleet.motion.robots[robot_id].cell

    fleet.run_until(lambda: len(charged_at) == 3 and not any(
        j.stage in (Stage.CHARGING, Stage.CHARGE, Stage.WAIT_CHARGER, Stage.UNPLUG) for j in sched.jobs.values()),
        900, each=watch)
    assert set(charged_at.values()) <= chargers
    # the farthest robot found both chargers taken and waited its turn
    assert stages["r3"][:2] == [Stage.WAIT_CHARGER, Stage.CHARGE]
    for robot_id in ("r1", "r2"):
        assert stages[robot_id][:3] == [Stage.CHARGE, Stage.CHARGING, Stage.UNPLUG]
    assert all(fleet.motion.robots[r].charge >= 0.265 for r in fleet.motion.robots)
    assert fleet.world.collisions == []


def test_a_critical_robot_takes_no_job_and_a_charging_one_leaves_for_work_above_resume():
    policy = BatteryPolicy(critical=0.15, low=0.21, resume=0.22, full=0.95)
    fleet = Fleet({"r1": Cell(2, 3)}, stock={"S1": {"A": 5}}, order_shelves=2,
                  config=SchedulerConfig(battery=policy), charge=0.2)
    sched = fleet.scheduler
    fleet.run_until(lambda: sched.jobs.get("r1") is not None and sched.jobs["r1"].stage is Stage.CHARGING, 300)
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=fleet.clock.now()))
    fleet.run_until(lambda: "O1" in sched.picked_at, 900, each=fleet.operate)
    fetched = [r for r in sched.presented if r.shelf_id == "S1"]
    assert fetched and fleet.motion.robots["r1"].charge < 0.95  # it left the charger before full
    # a robot below critical is never given a job, even with work waiting
    fleet2 = Fleet({"r1": Cell(2, 3), "r2": Cell(14, 4)}, stock={"S1": {"A": 5}}, order_shelves=2,
                   config=SchedulerConfig(battery=BatteryPolicy(critical=0.15, low=0.15, resume=0.5, full=0.95)))
    fleet2.world.soc[fleet2.world.robots["r1"].index] = 0.12
    fleet2.motion.robots["r1"].charge = 0.12
    fleet2.scheduler.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
    fleet2.run_until(lambda: "O1" in fleet2.scheduler.picked_at, 900, each=fleet2.operate)
    assert fleet2.scheduler.presented[0].shelf_id == "S1"
    assert fleet2.world.shelf("S1").carried_by in (None, "r2")
    assert all(f.robot_id != "r1" for f in fleet2.scheduler.failed_errands)


def test_idle_robots_go_to_the_nearest_free_parking_cell():
    fleet = Fleet({"r1": Cell(9, 4), "r2": Cell(10, 4)}, config=SchedulerConfig(park_after_s=5.0))
    fleet.run_until(lambda: all(fleet.map.kind(s.cell) is CellKind.PARKING and s.errand is None
                                for s in fleet.motion.robots.values()), 300)
    cells = [s.cell for s in fleet.motion.robots.values()]
    assert len(set(cells)) == 2
    assert Cell(10, 3) in cells  # the parking cell right next to r2's start


def test_a_fetch_is_reassigned_when_its_robot_is_taken_out_of_service():
    fleet = Fleet({"r1": Cell(2, 3), "r2": Cell(14, 4)}, stock={"S1": {"A": 5}}, order_shelves=2)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
    fleet.run_until(lambda: "r1" in sched.jobs and sched.jobs["r1"].stage is Stage.FETCH, 120)
    task = sched.jobs["r1"].task
    sched.take_out_of_service("r1", fleet.clock.now())
    assert "r1" not in sched.jobs
    assert "out of service" in sched.alarms[-1][1]
    fleet.run_until(lambda: "O1" in sched.picked_at, 900, each=fleet.operate)
    assert task.robot == "r2"
    assert fleet.world.shelf("S1").carried_by in (None, "r2")


def test_a_shelf_on_a_faulted_robot_is_flagged_never_lost_and_its_lines_replanned():
    fleet = Fleet({"r1": Cell(2, 3), "r2": Cell(14, 4)}, stock={"S1": {"A": 5}, "S9": {"A": 5}}, order_shelves=2)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 2),), created=0.0))
    fleet.run_until(lambda: any(j.stage is Stage.QUEUE for j in sched.jobs.values()), 300)
    robot_id, job = next((r, j) for r, j in sched.jobs.items() if j.stage is Stage.QUEUE)
    shelf_id = job.task.shelf
    fleet.world.inject(MotorStall(robot_id, duration=10_000.0))
    fleet.run_until(lambda: robot_id in sched.down, fleet.clock.now() + 30)
    assert sched.flagged[shelf_id].startswith(f"on robot {robot_id}")
    assert any(f"shelf {shelf_id}" in message for _, message in sched.alarms)
    assert fleet.inventory.shelf(shelf_id).robot == robot_id  # still on the robot in the model
    assert fleet.inventory.shelf(shelf_id).stock() == {"A": 5}
    fleet.run_until(lambda: "O1" in sched.picked_at, 900, each=fleet.operate)
    other = "S9" if shelf_id == "S1" else "S1"
    assert fleet.inventory.shelf(other).stock() == {"A": 3}
