"""Between the wire's messages and the fleet's commands and events, both ways.

The master turns commands into messages and robots' messages into fleet events
(drivers/serial/link.py); a robot's serial front end does the reverse, so that firmware
with the fleet's own command interface (the emulator's) can sit behind a serial port. Both
directions live here, in one place, so they cannot drift apart.

STATUS is the exception: a robot's firmware knows more than StatusReport carries (offsets,
uptime, load weight), so a front end builds wire.Status from its own status directly.
"""

from __future__ import annotations

import dataclasses

from drivers import events
from drivers.commands import InstantCommand, InstantKind, Job
from drivers.serial import messages as wire

#: Robot-to-master messages that carry a fleet event field for field.
_EVENT_OF: dict[type[wire.Message], type[events.RobotEvent]] = {
    wire.CellReached: events.CellReached,
    wire.ActionFinished: events.ActionFinished,
    wire.ActionFailed: events.ActionFailed,
    wire.JobFinished: events.JobFinished,
    wire.JobRejected: events.JobRejected,
    wire.ErrorRaised: events.ErrorRaised,
    wire.ErrorCleared: events.ErrorCleared,
    wire.BatteryReport: events.BatteryReport,
    wire.LoadChanged: events.LoadChanged,
}
_MESSAGE_OF = {event: message for message, event in _EVENT_OF.items()}


def fleet_event(robot_id: str, time: float, message: wire.Message) -> events.RobotEvent | None:
    """The fleet event a robot's message stands for; None for link-level messages."""
    if isinstance(message, wire.Status):
        return events.StatusReport(
            robot_id, time, message.cell, message.heading, message.x, message.y,
            message.theta, message.speed, message.driving, message.paused,
            message.charge, message.shelf_id, message.job_id, message.errors,
        )  # fmt: skip
    event_cls = _EVENT_OF.get(type(message))
    if event_cls is None:
        return None
    values = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    return event_cls(robot_id=robot_id, time=time, **values)


def event_message(event: events.RobotEvent) -> wire.Message:
    """The message a robot sends for one of its events (not StatusReport: see the module)."""
    message_cls = _MESSAGE_OF.get(type(event))
    if message_cls is None:
        raise ValueError(f"{type(event).__name__} is not sent as an event message")
    return message_cls(**{f.name: getattr(event, f.name) for f in dataclasses.fields(message_cls)})


def command_message(command: InstantCommand) -> wire.Message:
    """SET_POSE for INIT_POSITION, INSTANT for the rest."""
    if command.kind is InstantKind.INIT_POSITION:
        if command.cell is None or command.heading is None:
            raise ValueError("init_position needs a cell and a heading")
        return wire.SetPose(command.cell, command.heading, command.command_id)
    return wire.Instant(command.kind, command.command_id)


def robot_command(message: wire.Message) -> Job | wire.ExtendJob | InstantCommand:
    """What a master's message asks of the robot.

    An extension stays a wire.ExtendJob: only the firmware knows how many steps it holds,
    so it is the one to check `first_index` (and answer JOB_REJECTED if it does not fit).
    """
    if isinstance(message, wire.NewJob):
        return Job(message.job_id, message.steps)
    if isinstance(message, wire.ExtendJob):
        return message
    if isinstance(message, wire.SetPose):
        return InstantCommand(
            InstantKind.INIT_POSITION, message.cell, message.heading, message.command_id
        )
    if isinstance(message, wire.Instant):
        return InstantCommand(message.kind, command_id=message.command_id)
    raise ValueError(f"{type(message).__name__} is not a command to a robot")
