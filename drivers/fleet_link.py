"""One RobotLink over several wires: a mixed fleet, routed by robot id.

A warehouse runs robots on MQTT, benches add a few on serial, simulations add emulated
ones in-process; fleet/ must see one link whatever the mix. FleetLink sends each command
down the link its robot is routed to, and drains every link, keeping only the events
about robots routed to that link: an in-process link that hears every robot of its world
must not speak for the ones a serial line carries.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from drivers.commands import InstantCommand, Job, Step
from drivers.events import RobotEvent
from drivers.link import RobotLink, UnknownRobot


class FleetLink(RobotLink):
    def __init__(self, routes: Mapping[str, RobotLink]) -> None:
        """`routes` maps each robot id to the link that carries it."""
        if not routes:
            raise ValueError("a fleet link needs at least one robot")
        self._routes = dict(routes)
        self._links: list[RobotLink] = []
        for robot_id, link in self._routes.items():
            if robot_id not in link.robot_ids():
                raise ValueError(f"robot {robot_id!r} is routed to a link that does not know it")
            if all(link is not known for known in self._links):
                self._links.append(link)

    def robot_ids(self) -> list[str]:
        return list(self._routes)

    def link_of(self, robot_id: str) -> RobotLink:
        try:
            return self._routes[robot_id]
        except KeyError:
            raise UnknownRobot(robot_id) from None

    def send_job(self, robot_id: str, job: Job) -> None:
        self.link_of(robot_id).send_job(robot_id, job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        self.link_of(robot_id).extend_job(robot_id, job_id, steps)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        self.link_of(robot_id).instant(robot_id, command)

    def drain(self) -> list[RobotEvent]:
        """Every link's events for its own robots, merged in time order (stable: one
        robot's events keep the order its link received them in)."""
        drained = [
            event
            for link in self._links
            for event in link.drain()
            if self._routes.get(event.robot_id) is link
        ]
        return sorted(drained, key=lambda event: event.time)

    def close(self) -> None:
        for link in self._links:
            link.close()
