"""Each injectable fault, localisation (missed codes, initialisation) and seeded random schedules."""

from __future__ import annotations

import math

import pytest

from drivers.commands import InstantCommand, InstantKind
from drivers.events import (
    CellReached,
    ConnectionChanged,
    ErrorRaised,
    JobFinished,
    JobRejected,
    StatusReport,
)
from drivers.inprocess import InProcessLink
from emulator_kit import Bench, job, line, trapezoid_time
from firmware_emulator.faults import (
    FAULT_KINDS,
    BatteryDrop,
    CommunicationLoss,
    LaserObstacle,
    LostLocalisation,
    MissedCode,
    MotorStall,
    Reboot,
    SlowDown,
    check_fault,
    random_faults,
)
from firmware_emulator.profile import DEFAULT_PROFILE as P
from maps import Cell, Heading


def codes(unit) -> list[str]:
    return [e.code for e in unit.status().errors]


def test_communication_loss_drops_commands_and_events_but_the_robot_drives_on() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    link = InProcessLink(world)
    link.send_job("r", job("j", line(1, 2, 9, 2)))
    bench.run(1.0)
    world.inject(CommunicationLoss("r", 10.0))
    lost = [e for e in link.drain() if isinstance(e, ConnectionChanged)]
    assert [(e.online, e.reason) for e in lost] == [(False, "communication lost")]
    link.instant("r", InstantCommand(InstantKind.STOP))  # vanishes on the wire
    assert link.dropped == 1
    bench.run(8.0)
    assert world.robot("r").cell == Cell(9, 2)  # it finished what it held
    assert link.drain() == []  # ... but nobody heard it
    bench.run(2.0)
    back = link.drain()
    assert isinstance(back[0], ConnectionChanged) and back[0].online
    assert back[0].time == pytest.approx(11.0, abs=bench.world.dt)
    assert isinstance(back[1], StatusReport) and back[1].cell == Cell(9, 2) and back[1].job_id == "j"
    assert "emergency_stop" not in codes(world.robot("r"))


def test_motor_stall_stops_dead_and_latches_until_reset_after_it_ends() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 9, 2)))
    bench.run(2.0)
    world.inject(MotorStall("r", 3.0))
    assert world.v[0] == 0.0 and "motor_stall" in codes(world.robot("r"))
    x = float(world.x[0])
    bench.run(1.0)
    world.instant("r", InstantCommand(InstantKind.RESET))  # still stalled: the error stays
    assert "motor_stall" in codes(world.robot("r"))
    bench.run(4.0)
    assert float(world.x[0]) == x
    world.instant("r", InstantCommand(InstantKind.RESET))
    assert "motor_stall" not in codes(world.robot("r"))
    bench.run(10)
    assert bench.last(JobFinished, "r") is not None


def test_slow_down_stretches_runs_and_turns_then_wears_off() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.inject(SlowDown("r", 0.5, 20.0))
    world.send_job("r", job("j", line(1, 2, 6, 2)))
    bench.run(15)
    slow = bench.last(JobFinished, "r").time
    expected = trapezoid_time(5, 0.5 * P.max_speed, P.acceleration, P.deceleration)
    assert expected - 1e-9 <= slow <= expected + bench.world.dt + 1e-9
    start = bench.clock.now()
    world.send_job("r", job("k", [Cell(6, 2)], headings={0: Heading.NORTH}))
    bench.run(3)
    assert bench.last(JobFinished, "r").time - start == pytest.approx(2.0, abs=bench.world.dt + 1e-9)
    bench.run(5)  # the fault ended at t = 20
    start = bench.clock.now()
    world.send_job("r", job("m", line(6, 2, 6, 1)))
    bench.run(5)
    assert bench.last(JobFinished, "r").time - start == pytest.approx(trapezoid_time(1, 1.5, 1, 1), abs=bench.world.dt + 1e-9)


def test_one_missed_code_is_dead_reckoned_over() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.inject(MissedCode("r"))
    world.send_job("r", job("j", line(1, 2, 6, 2)))
    bench.run(1.5)
    status = world.robot("r").status()
    bench.run(8)
    assert [e.cell for e in bench.of(CellReached, "r")] == line(3, 2, 6, 2)
    assert [e.step_index for e in bench.of(CellReached, "r")] == [2, 3, 4, 5]
    assert bench.last(JobFinished, "r") is not None
    # between codes the believed position drifts by the profile's rate
    assert status.x != pytest.approx(float(world.x[0]), abs=1e-12)


def test_too_many_missed_codes_lose_localisation_until_placed_and_initialised() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.inject(MissedCode("r", count=2))
    world.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(10)
    assert "localisation_lost" in codes(unit)
    assert next(e for e in bench.of(ErrorRaised, "r") if e.code == "localisation_lost").severity.value == "fatal"
    # it stopped after max_distance_without_code (plus its braking), between codes
    travelled = float(world.x[0]) - 1.0
    assert P.max_distance_without_code_m <= travelled <= P.max_distance_without_code_m + 0.1
    assert unit.job_id is None and world.v[0] == 0.0
    world.send_job("r", job("k", line(3, 2, 4, 2)))
    assert "not localised" in bench.last(JobRejected, "r").reason
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(3, 2)))
    assert "no code under my camera" in unit.errors["init_position_rejected"].message
    world.place_robot("r", Cell(4, 2), Heading.EAST)
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(4, 2), heading=Heading.EAST))
    assert unit.localised and codes(unit) == []
    assert world.send_job("r", job("k", line(4, 2, 5, 2)))


def test_lost_localisation_stops_the_robot_at_once() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(2)
    world.inject(LostLocalisation("r"))
    assert world.v[0] == 0.0 and not unit.localised and unit.job_id is None
    assert unit.status().cell is None


def test_initialisation_is_required_and_checked_against_the_code_read() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(2, 2), Heading.NORTH, localised=False)
    world.send_job("r", job("j", line(2, 2, 4, 2)))
    assert "not localised" in bench.last(JobRejected, "r").reason
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(3, 2)))
    assert "read the code of (2, 2)" in unit.errors["init_position_rejected"].message
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(2, 2), heading=Heading.EAST))
    assert "code says north" in unit.errors["init_position_rejected"].message
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(2, 2), heading=Heading.NORTH))
    assert unit.localised and unit.cell == Cell(2, 2) and unit.errors == {}
    assert world.send_job("r", job("j", line(2, 2, 4, 2)))


def test_laser_obstacle_appears_and_disappears() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.inject(LaserObstacle("r", distance=2.0, duration=10.0))
    world.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(8)
    # stood off the obstacle (2 m ahead of its front) by the laser stand-off
    assert world.laser_stops == 1 and world.v[0] == 0.0
    front = float(world.x[0]) + 0.4
    assert front == pytest.approx(1.0 + 0.4 + 2.0 - P.laser_standoff_m, abs=0.02)
    bench.run(10)
    assert bench.last(JobFinished, "r") is not None and world.collisions == []


def test_reboot_forgets_job_and_pose_until_initialised() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(1, 2), Heading.EAST)
    link = InProcessLink(world)
    link.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(2)
    world.inject(Reboot("r", boot_time=5.0))
    assert world.v[0] == 0.0 and unit.job_id is None and not unit.localised
    bench.run(4)
    assert not unit.online
    bench.run(2)
    events = link.drain()
    changes = [(e.online, e.reason) for e in events if isinstance(e, ConnectionChanged)]
    assert changes == [(False, "reboot"), (True, "")]
    assert "not_localised" in codes(unit)
    link.send_job("r", job("k", [Cell(3, 2)]))
    assert "not localised" in [e for e in link.drain() if isinstance(e, JobRejected)][0].reason


def test_fault_records_are_checked() -> None:
    for bad in (SlowDown("r", 0.0, 1.0), SlowDown("r", 1.5, 1.0), CommunicationLoss("r", -1.0),
                MissedCode("r", 0), BatteryDrop("r", 2.0), LaserObstacle("r", -1.0, 1.0), "reboot"):
        with pytest.raises(ValueError):
            check_fault(bad)
    bench = Bench()
    with pytest.raises(KeyError, match="no robot 'ghost'"):
        bench.world.inject(MotorStall("ghost", 1.0))


def test_random_fault_schedules_are_seeded_and_survivable() -> None:
    ids = [f"r{k}" for k in range(6)]
    one = random_faults(ids, horizon=600, per_robot_hour=30, seed=4)
    assert one == random_faults(ids, horizon=600, per_robot_hour=30, seed=4)
    assert one != random_faults(ids, horizon=600, per_robot_hour=30, seed=5)
    assert {type(f) for _, f in one} == set(FAULT_KINDS)
    assert [t for t, _ in one] == sorted(t for t, _ in one)

    bench = Bench()
    world = bench.world
    for k, robot_id in enumerate(ids):
        world.add_robot(robot_id, Cell(1 + 2 * k, 1), Heading.SOUTH)
    world.inject_all(random_faults(ids, horizon=120, per_robot_hour=60, seed=9))
    for k, robot_id in enumerate(ids):
        world.send_job(robot_id, job(f"j{k}", line(1 + 2 * k, 1, 1 + 2 * k, 3)))
    bench.run(130)
    assert math.isfinite(float(world.soc[: world.n].sum()))


def test_a_rebooting_robot_ignores_even_direct_commands() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(2, 2), Heading.EAST)
    world.inject(Reboot("r", boot_time=5.0))
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(2, 2)))
    assert not world.send_job("r", job("j", line(2, 2, 3, 2)))
    assert not unit.localised
    bench.run(6)
    world.instant("r", InstantCommand(InstantKind.INIT_POSITION, cell=Cell(2, 2)))
    assert unit.localised and world.send_job("r", job("j", line(2, 2, 3, 2)))


def test_losing_localisation_while_held_by_the_laser_clears_the_obstacle_warning() -> None:
    bench = Bench()
    world = bench.world
    unit = world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.inject(LaserObstacle("r", distance=1.0, duration=60.0))
    world.send_job("r", job("j", line(1, 2, 6, 2)))
    bench.run(5)
    assert "obstacle" in codes(unit)
    world.inject(LostLocalisation("r"))
    assert codes(unit) == ["localisation_lost"]
