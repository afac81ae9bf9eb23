"""Drive-unit motion: trapezoidal runs, turns in place, lift/lower, QR reads, job extension."""

from __future__ import annotations


import numpy as np
import pytest

from drivers.commands import ActionKind, InstantCommand, InstantKind, Step
from drivers.events import ActionFailed, ActionFinished, CellReached, JobFinished, JobRejected, LoadChanged
from emulator_kit import Bench, act, job, line, trapezoid_time
from firmware_emulator.kinematics import speed_step
from firmware_emulator.profile import DEFAULT_PROFILE as P
from maps import Cell, Heading


@pytest.mark.parametrize("cells", [1, 2, 3, 5, 10])
def test_straight_run_matches_the_closed_form_trapezoid(cells: int) -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    bench.world.send_job("r", job("j", line(1, 2, 1 + cells, 2)))
    bench.run(20)
    finished = bench.last(JobFinished, "r")
    expected = trapezoid_time(float(cells), P.max_speed, P.acceleration, P.deceleration)
    # the job ends at the first physics step at or after the true arrival
    assert expected - 1e-9 <= finished.time <= expected + bench.world.dt + 1e-9
    x, y = bench.map.position(Cell(1 + cells, 2))
    assert bench.world.x[0] == pytest.approx(x, abs=1e-6) and bench.world.y[0] == pytest.approx(y, abs=1e-6)


@pytest.mark.parametrize("dt", [0.01, 0.05, 0.1])
def test_integration_is_exact_whatever_the_step(dt: float) -> None:
    """The phases inside a step are solved in closed form: distance(t) equals the trapezoid's."""
    v, s, t = np.zeros(1), 0.0, 0.0
    length = 7.0
    peak_t = P.max_speed / P.acceleration
    while t < 2.0 - 1e-9:
        ds, v = speed_step(v, np.array([length - s]), np.array([P.max_speed]), np.array([1.0]), np.array([1.0]),
                           np.array([2.0]), dt)
        s += ds[0]
        t += dt
    # at t = 2 s: accelerated for 1.5 s (1.125 m) then cruised 0.5 s at 1.5 m/s
    assert t == pytest.approx(2.0)
    assert s == pytest.approx(0.5 * 1.0 * peak_t**2 + 1.5 * (2.0 - peak_t), abs=1e-9)
    assert v[0] == pytest.approx(1.5)


def test_a_robots_step_does_not_depend_on_the_robots_stepped_with_it() -> None:
    """Each robot's phases are solved on their own: a robot that reaches its braking curve
    at the end of the step moves the same, to the last bit, whether or not a robot that
    needs more phases (accelerate to its cap, then cruise) is in the same step."""
    one = np.ones(2)
    v, stop, cap = np.array([1.5, 0.74]), np.array([1.2, np.inf]), np.array([1.5, 0.75])
    together = speed_step(v, stop, cap, one, one, 2 * one, 0.05)
    alone = speed_step(v[:1], stop[:1], cap[:1], one[:1], one[:1], 2 * one[:1], 0.05)
    assert (together[0][0], together[1][0]) == (alone[0][0], alone[1][0])


def test_no_stop_at_intermediate_cells_of_a_straight_run() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    bench.world.send_job("r", job("j", line(1, 2, 9, 2)))
    speed_at_read = []
    while not bench.of(JobFinished):
        reads = len(bench.of(CellReached))
        bench.run(bench.world.dt)
        if len(bench.of(CellReached)) > reads:
            speed_at_read.append(float(bench.world.v[0]))
    # it passed every intermediate code at speed (above 1 m/s); it stopped only at the last
    assert min(speed_at_read[:-1]) > 1.0 and speed_at_read[-1] == 0.0
    reads = bench.of(CellReached, "r")
    assert [e.cell for e in reads] == line(2, 2, 9, 2)
    assert [e.step_index for e in reads] == list(range(1, 9))


def test_qr_codes_are_read_when_the_centre_passes_a_cell_centre() -> None:
    bench = Bench(dt=0.02)
    bench.world.add_robot("r", Cell(1, 3), Heading.EAST)
    bench.world.send_job("r", job("j", line(1, 3, 6, 3)))
    seen: list[tuple[Cell, float]] = []  # (cell read, true x of the robot when it read it)
    bench.world.subscribe(lambda e: seen.append((e.cell, float(bench.world.x[0]))) if isinstance(e, CellReached) else None)
    bench.run(10)
    assert [cell for cell, _ in seen] == line(2, 3, 6, 3)
    for cell, x_then in seen:
        centre_x, _ = bench.map.position(cell)
        # read in the physics step in which the centre passed: at most one step (1.5 m/s * 0.02 s) beyond
        assert -1e-6 <= x_then - centre_x <= P.max_speed * bench.world.dt + 1e-9
    status = bench.world.robot("r").status()
    assert status.last_qr == bench.map.qr_id(Cell(6, 3))
    assert abs(status.qr_offset[0]) < 0.02 and abs(status.qr_offset[1]) < 0.02 and abs(status.qr_offset[2]) < 0.02


@pytest.mark.parametrize("target, quarters", [(Heading.NORTH, 1), (Heading.SOUTH, 1), (Heading.WEST, 2)])
def test_turns_in_place_take_their_angle_over_the_rotation_speed(target: Heading, quarters: int) -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(5, 2), Heading.EAST)
    bench.world.send_job("r", job("j", [Cell(5, 2)], headings={0: target}))
    x0, y0 = float(bench.world.x[0]), float(bench.world.y[0])
    bench.run(5)
    expected = quarters * 90 / P.rotation_speed_deg
    finished = bench.last(JobFinished, "r").time
    assert expected - 1e-9 <= finished <= expected + bench.world.dt + 1e-9
    assert bench.world.robot("r").heading is target
    assert (bench.world.x[0], bench.world.y[0]) == (x0, y0)  # in place


def test_a_path_with_a_corner_stops_turns_and_goes_on() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 1), Heading.EAST)
    cells = line(1, 1, 4, 1) + line(4, 2, 4, 3)
    bench.world.send_job("r", job("j", cells))
    bench.run(15)
    finished = bench.last(JobFinished, "r").time
    expected = trapezoid_time(3, 1.5, 1, 1) + 1.0 + trapezoid_time(2, 1.5, 1, 1)
    assert expected <= finished <= expected + 3 * bench.world.dt
    assert bench.world.robot("r").heading is Heading.SOUTH
    assert [e.cell for e in bench.of(CellReached, "r")] == cells[1:]


def test_lift_and_lower_take_their_profile_times() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(3, 4), Heading.EAST)
    bench.world.send_job("r", job("j", [Cell(3, 4)], actions={0: [act(ActionKind.LIFT, "up", shelf_id="shelf-3-4")]}))
    bench.run(5)
    lifted = bench.last(ActionFinished, "r")
    assert lifted.action_id == "up"
    assert P.lift_time - 1e-9 <= lifted.time <= P.lift_time + bench.world.dt
    assert bench.last(LoadChanged, "r").shelf_id == "shelf-3-4"
    start = bench.clock.now()
    bench.world.send_job("r", job("k", [Cell(3, 4)], actions={0: [act(ActionKind.LOWER, "down")]}))
    bench.run(5)
    lowered = bench.last(ActionFinished, "r")
    assert lowered.action_id == "down"
    assert P.lower_time - 1e-9 <= lowered.time - start <= P.lower_time + bench.world.dt
    assert bench.last(LoadChanged, "r").shelf_id is None
    assert bench.world.stored_shelf_at(Cell(3, 4)) == "shelf-3-4"


def test_extension_lengthens_the_run_without_stopping() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    bench.world.send_job("r", job("j", line(1, 2, 3, 2)))
    bench.run(1.0)
    bench.world.extend_job("r", "j", [Step(c) for c in line(4, 2, 8, 2)])
    speed_at: dict[Cell, float] = {}
    bench.world.subscribe(lambda e: speed_at.update({e.cell: float(bench.world.v[0])}) if isinstance(e, CellReached) else None)
    bench.run(10)
    assert speed_at[Cell(3, 2)] > 1.0  # it did not stop at (3, 2), the end of the first release
    expected = trapezoid_time(7, 1.5, 1, 1)
    assert bench.last(JobFinished).time <= expected + bench.world.dt + 1e-9


def test_a_finished_job_may_be_extended_and_a_broken_extension_is_rejected() -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    bench.world.send_job("r", job("j", line(1, 2, 2, 2)))
    bench.run(4)
    assert len(bench.of(JobFinished)) == 1
    bench.world.extend_job("r", "j", [Step(Cell(5, 2))])  # not adjacent to (2, 2)
    assert "not adjacent" in bench.last(JobRejected).reason
    bench.world.extend_job("r", "j", [Step(Cell(3, 2)), Step(Cell(3, 3))])
    bench.run(6)
    assert len(bench.of(JobFinished)) == 2
    assert bench.world.robot("r").cell == Cell(3, 3)


@pytest.mark.parametrize("reason, setup", [
    ("starts at", lambda w: w.send_job("r", job("x", line(2, 2, 3, 2)))),
    ("outside the map", lambda w: w.send_job("r", job("x", [Cell(1, 2), Cell(0, 2), Cell(-1, 2)]))),
])
def test_bad_jobs_are_rejected_with_a_reason(reason: str, setup) -> None:
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST)
    setup(bench.world)
    assert reason in bench.last(JobRejected, "r").reason
    assert bench.world.robot("r").job_id is None


def test_a_second_job_while_one_runs_is_rejected_and_cancel_stops_at_a_cell_centre() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 10, 2)))
    bench.run(2.0)
    world.send_job("r", job("k", [Cell(1, 2)]))
    assert "in progress" in bench.last(JobRejected, "r").reason
    world.instant("r", InstantCommand(InstantKind.CANCEL))
    bench.run(5)
    assert not bench.of(JobFinished)
    x = float(world.x[0])
    assert x == pytest.approx(round(x), abs=1e-6)  # at a cell centre
    assert 3 <= x <= 6
    assert world.robot("r").job_id is None and world.robot("r").status().state == "idle"
    assert world.send_job("r", job("k", [world.robot("r").cell, Cell(int(round(x)) + 1, 2)]))


def test_pause_halts_and_resume_carries_on() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(2.0)
    world.instant("r", InstantCommand(InstantKind.PAUSE))
    bench.run(3.0)
    x_paused = float(world.x[0])
    bench.run(3.0)
    assert float(world.x[0]) == x_paused and world.v[0] == 0.0
    assert world.robot("r").status().paused
    world.instant("r", InstantCommand(InstantKind.RESUME))
    bench.run(10)
    assert bench.last(JobFinished, "r") is not None
    assert world.robot("r").cell == Cell(8, 2)


def test_emergency_stop_halts_at_once_and_needs_a_reset() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 8, 2)))
    bench.run(2.0)
    world.instant("r", InstantCommand(InstantKind.STOP))
    assert world.v[0] == 0.0
    x = float(world.x[0])
    bench.run(5)
    assert float(world.x[0]) == x
    assert "emergency_stop" in [e.code for e in world.robot("r").status().errors]
    world.instant("r", InstantCommand(InstantKind.RESET))
    bench.run(10)
    assert bench.last(JobFinished, "r") is not None
    assert world.robot("r").status().errors == ()


def test_actions_in_order_with_wait() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(3, 4), Heading.EAST)
    world.send_job("r", job("j", [Cell(3, 4), Cell(3, 3)], actions={
        0: [act(ActionKind.LIFT, "up"), act(ActionKind.WAIT, "w", duration=3.0)],
    }))
    bench.run(12)
    done = [(e.action_id, e.time) for e in bench.of(ActionFinished, "r")]
    assert [a for a, _ in done] == ["up", "w"]
    assert done[1][1] - done[0][1] == pytest.approx(3.0, abs=bench.world.dt + 1e-9)
    # loaded: the run to (3, 3) used the loaded top speed
    assert world.robot("r").cell == Cell(3, 3)
    assert world.shelf("shelf-3-4").carried_by == "r"
    sx, sy = bench.map.position(Cell(3, 3))
    assert (world.shelf("shelf-3-4").x, world.shelf("shelf-3-4").y) == pytest.approx((sx, sy))


def test_load_sensing_refuses_an_overweight_or_unexpected_shelf() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(3, 4), Heading.EAST)
    world.set_shelf_weight("shelf-3-4", 700.0)
    world.send_job("r", job("j", [Cell(3, 4), Cell(3, 3)], actions={0: [act(ActionKind.LIFT, "up")]}))
    failed = bench.last(ActionFailed, "r")
    assert failed.action_id == "up" and "700 kg, over my payload of 600 kg" in failed.reason
    assert world.robot("r").job_id is None  # a failed action ends the job: it does not drive off
    bench.run(3)
    assert world.shelf("shelf-3-4").carried_by is None and world.robot("r").cell == Cell(3, 4)
    world.set_shelf_weight("shelf-3-4", 300.0)
    world.send_job("r", job("k", [Cell(3, 4)], actions={0: [act(ActionKind.LIFT, "up", shelf_id="shelf-9-9")]}))
    assert "expected shelf shelf-9-9 but shelf shelf-3-4" in bench.last(ActionFailed, "r").reason
    world.send_job("r", job("m", [Cell(3, 4)], actions={0: [act(ActionKind.LIFT, "up", shelf_id="shelf-3-4")]}))
    bench.run(3)
    assert world.robot("r").status().load_kg == 300.0 and world.robot("r").status().shelf_id == "shelf-3-4"


def test_run_paced_never_runs_ahead_of_the_wall_clock() -> None:
    from firmware_emulator.world import World
    from fleet.clock import WallClock

    clock = WallClock(speed=100.0)
    world = World(Bench().map, clock, dt=0.05)
    world.add_robot("r", Cell(1, 2), Heading.EAST)
    world.send_job("r", job("j", line(1, 2, 2, 2)))
    until = clock.now() + 2.5
    world.run_paced(until)
    assert clock.now() >= until - 1e-9  # it waited for the (sped-up) wall clock
    assert world.robot("r").cell == Cell(2, 2)  # a 1 m run takes 2 s
