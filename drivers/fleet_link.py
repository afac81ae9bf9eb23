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
from maps.model import Cell


class FleetLink(RobotLink):
    def __init__(self, routes: Mapping[str, RobotLink], links: Sequence[RobotLink] = ()) -> None:
        """`routes` maps each robot id to the link that carries it; `links` may add links
        that carry no robot yet (an MQTT link adopts its vehicles as they come online:
        `route` them then)."""
        self._routes: dict[str, RobotLink] = {}
        self._links: list[RobotLink] = []
        for link in links:
            self._keep(link)
        for robot_id, link in routes.items():
            self.route(robot_id, link)
        if not self._links:
            raise ValueError("a fleet link needs at least one link")

    def route(self, robot_id: str, link: RobotLink) -> None:
        """Send the robot's commands down `link` and keep its events from there, from now on."""
        if robot_id not in link.robot_ids():
            raise ValueError(f"robot {robot_id!r} is routed to a link that does not know it")
        current = self._routes.get(robot_id)
        if current is not None and current is not link:
            raise ValueError(f"robot {robot_id!r} is already routed to another link")
        self._routes[robot_id] = link
        self._keep(link)

    def _keep(self, link: RobotLink) -> None:
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

    def takes_preview(self, robot_id: str) -> bool:
        return self.link_of(robot_id).takes_preview(robot_id)

    def preview(self, robot_id: str, job_id: str, cells: Sequence[Cell]) -> None:
        self.link_of(robot_id).preview(robot_id, job_id, cells)

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
