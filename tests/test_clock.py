"""The simulated clock decides event order in every test and benchmark: check it hard."""

import pytest

from fleet.clock import SimulatedClock, WallClock


def test_callbacks_run_in_time_order_and_ties_in_scheduling_order():
    clock = SimulatedClock()
    seen: list[tuple[float, str]] = []
    for name, due in [("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0)]:
        clock.call_at(due, lambda n=name: seen.append((clock.now(), n)))
    assert clock.advance_to(2.5) == 3
    assert seen == [(1.0, "a"), (2.0, "b1"), (2.0, "b2")]
    assert clock.now() == 2.5
    clock.advance(1.0)
    assert seen[-1] == (3.0, "c")


def test_callbacks_scheduled_by_callbacks_run_in_the_same_advance():
    clock = SimulatedClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now())
        if clock.now() < 5:
            clock.call_later(1.0, tick)

    clock.call_at(0.0, tick)
    clock.advance_to(10.0)
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_cancelled_timer_never_runs():
    clock = SimulatedClock()
    seen: list[str] = []
    timer = clock.call_later(1.0, lambda: seen.append("x"))
    clock.cancel(timer)
    assert clock.next_due() is None
    clock.advance(2.0)
    assert seen == []


def test_time_never_goes_backwards():
    clock = SimulatedClock(start=10.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(5.0)
    with pytest.raises(ValueError, match="past"):
        clock.call_at(9.0, lambda: None)


def test_wall_clock_moves_forward_at_its_speed():
    fast = WallClock(speed=1000.0)
    a = fast.now()
    b = fast.now()
    assert b >= a >= 0.0
    with pytest.raises(ValueError):
        WallClock(speed=0)
