"""Commands and events survive the trip through wire messages, in both directions."""

from __future__ import annotations

import pytest

from drivers import events
from drivers.commands import (
    ActionKind,
    CellAction,
    InstantCommand,
    InstantKind,
    Job,
    Step,
)
from drivers.serial import messages as wire
from drivers.serial.messages import Side
from drivers.serial.translate import (
    command_message,
    event_message,
    fleet_event,
    robot_command,
)
from maps.model import Cell, Heading

EVENTS: list[events.RobotEvent] = [
    events.CellReached("r1", 3.5, Cell(1, 2), Heading.SOUTH, "J1", 4),
    events.CellReached("r1", 3.5, Cell(1, 2), Heading.SOUTH, None, None),
    events.ActionFinished("r1", 3.5, "J1", "a1", ActionKind.START_CHARGING),
    events.ActionFailed("r1", 3.5, None, "a1", ActionKind.LIFT, "no shelf there"),
    events.JobFinished("r1", 3.5, "J1"),
    events.JobRejected("r1", 3.5, "J1", "battery too low for the path"),
    events.ErrorRaised("r1", 3.5, "collision", events.Severity.FATAL, "bumper"),
    events.ErrorCleared("r1", 3.5, "collision"),
    events.BatteryReport("r1", 3.5, 0.333, False),
    events.LoadChanged("r1", 3.5, None, 0.0),
    events.LoadChanged("r1", 3.5, "S-12", 480.3),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_robot_event_round_trip(event: events.RobotEvent) -> None:
    message = event_message(event)
    decoded = wire.decode(message.TYPE, wire.encode(message))
    assert fleet_event(event.robot_id, event.time, decoded) == event


def test_every_robot_message_is_a_fleet_event() -> None:
    robot_types = {cls for cls in wire.message_types().values() if cls.SENDER is Side.ROBOT} - {
        wire.Identity
    }
    sent = {type(event_message(e)) for e in EVENTS} | {wire.Status}
    assert sent == robot_types


def test_status_becomes_a_status_report() -> None:
    status = wire.Status(
        7, Cell(4, 4), Heading.WEST, 0.01, 0.0, 5.0, 6.25, 3.142, -0.5, True, True, False,
        True, 0.5, "S1", 200.0, "J2", 3, 9, 0, ("laser_stop",),
    )  # fmt: skip
    report = fleet_event("r2", 9.0, status)
    assert report == events.StatusReport(
        "r2", 9.0, Cell(4, 4), Heading.WEST, 5.0, 6.25, 3.142, -0.5, True, True, 0.5, "S1", "J2",
        ("laser_stop",),
    )  # fmt: skip


def test_link_level_messages_are_not_fleet_events() -> None:
    for message in (wire.Heartbeat(), wire.Ack(), wire.Identity(1, "r1", "", 0, 500)):
        assert fleet_event("r1", 0.0, message) is None


@pytest.mark.parametrize("kind", list(InstantKind), ids=lambda k: k.value)
def test_instant_command_round_trip(kind: InstantKind) -> None:
    if kind is InstantKind.INIT_POSITION:
        command = InstantCommand(kind, Cell(3, 1), Heading.NORTH, "init-7")
    else:
        command = InstantCommand(kind, command_id=f"cmd-{kind.value}")
    message = command_message(command)
    assert robot_command(wire.decode(message.TYPE, wire.encode(message))) == command


def test_job_round_trip_and_extension_stays_a_message() -> None:
    job = Job(
        "J1",
        (
            Step(Cell(0, 0)),
            Step(Cell(0, 1), Heading.SOUTH, (CellAction("l", ActionKind.LOWER, "S1"),)),
        ),
    )
    (message,) = wire.job_messages(job.job_id, job.steps)
    assert robot_command(message) == job
    (extension,) = wire.job_messages("J1", [Step(Cell(0, 2))], first_index=2)
    assert robot_command(extension) == wire.ExtendJob("J1", 2, (Step(Cell(0, 2)),))


def test_what_cannot_be_translated_is_refused() -> None:
    with pytest.raises(ValueError, match="cell and a heading"):
        command_message(InstantCommand(InstantKind.INIT_POSITION, Cell(0, 0)))
    report = events.StatusReport(
        "r1", 0.0, None, None, 0, 0, 0, 0, False, False, 1.0, None, None
    )  # fmt: skip
    with pytest.raises(ValueError, match="StatusReport"):
        event_message(report)
    with pytest.raises(ValueError, match="ConnectionChanged"):
        event_message(events.ConnectionChanged("r1", 0.0, True))
    with pytest.raises(ValueError, match="not a command"):
        robot_command(wire.JobFinished("J1"))
