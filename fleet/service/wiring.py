"""Assembles a runtime from the settings: the map, the robots' links, traffic and motion
control, the work that hands out errands, the store.

Robots come three ways, combined behind one FleetLink so that nothing above it knows
which wire a robot is on:
- emulated in process (firmware_emulator over drivers.inprocess): known at start, where
  their world put them;
- VDA 5050 vehicles on the configured broker (drivers.vda5050.link, the master side),
  adopted when they come ONLINE, or only those listed;
- robots on serial lines (drivers.serial.link), one port each, as configured.
A robot on a real link joins motion control only once it has reported where it stands
(`Adoption`), whenever that is: at start, or hours later.

Time: a fleet of emulated robots only runs on a SimulatedClock that the runtime advances
paced to wall time x speed, so demos can run fast. A real robot lives in real time, so as
soon as a real link is configured the fleet runs on a WallClock, and an emulated world
beside the real robots is caught up with that clock once per cycle (`PacedWorldLink`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from drivers.commands import InstantCommand, Job, Step
from drivers.events import BatteryReport, ConnectionChanged, ErrorCleared, ErrorRaised, LoadChanged, RobotEvent, \
    StatusReport
from drivers.fleet_link import FleetLink
from drivers.inprocess import InProcessLink
from drivers.link import RobotLink
from fleet.clock import Clock, SimulatedClock, WallClock
from fleet.service.config import BrokerSettings, ConfigError, SerialSettings, Settings
from fleet.service.metrics import Metrics
from fleet.service.runtime import CountingLink, Runtime
from fleet.service.store import Store
from maps import load_map, shipped_map
from maps.model import Cell, WarehouseMap

if TYPE_CHECKING:
    from drivers.serial.link import SerialLink
    from drivers.vda5050.link import Vda5050Link
    from firmware_emulator.world import World
    from fleet.domain.generator import Scenario

log = logging.getLogger(__name__)


def load_warehouse_map(name: str) -> WarehouseMap:
    """A shipped map by name, or a map file by path. Raises MapError or FileNotFoundError."""
    if name.endswith(".toml") or Path(name).exists():
        return load_map(name)
    return shipped_map(name)


class Adoption(RobotLink):
    """Between motion control and the links: robots on real links join when located.

    Motion control must know a robot's cell and heading before it plans it, but a robot on
    a wire is first heard of when its link hears it: a vehicle that comes ONLINE, a serial
    robot that answers. Until its status says where it stands, its events are held here,
    only those that describe its condition (connection, battery, load, errors; the latest
    of each), since reports about a job this fleet did not give mean nothing to motion
    control. Then the runtime takes it from `arrivals` and adds it, and the held events
    follow at the next drain, before anything newer.

    Adopting links (MQTT) learn robots as they go: each new one is routed in the FleetLink
    at the next drain. A robot id that another link already carries is refused, loudly.
    """

    #: Seconds before a located robot that could not join (its cell held by another robot)
    #: is offered to the runtime again.
    RETRY_S = 5.0

    def __init__(self, fleet: FleetLink, adopting: Sequence[RobotLink], clock: Clock) -> None:
        self.fleet = fleet
        #: Each adopting link and the robot ids already looked at (routed, or refused).
        self._adopting: dict[RobotLink, set[str]] = {link: set() for link in adopting}
        self._clock = clock
        #: Whether a robot is in motion control; set once motion control exists.
        self.members: Callable[[str], bool] = lambda robot_id: False
        self._located: dict[str, StatusReport] = {}
        self._offered: dict[str, float] = {}
        self._held: dict[str, dict[object, RobotEvent]] = {}

    def robot_ids(self) -> list[str]:
        return self.fleet.robot_ids()

    def send_job(self, robot_id: str, job: Job) -> None:
        self.fleet.send_job(robot_id, job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        self.fleet.extend_job(robot_id, job_id, steps)

    def takes_preview(self, robot_id: str) -> bool:
        return self.fleet.takes_preview(robot_id)

    def preview(self, robot_id: str, job_id: str, cells: Sequence[Cell]) -> None:
        self.fleet.preview(robot_id, job_id, cells)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        self.fleet.instant(robot_id, command)

    def close(self) -> None:
        self.fleet.close()

    def drain(self) -> list[RobotEvent]:
        self._route_newcomers()
        out: list[RobotEvent] = []
        for robot_id in [r for r in self._located if self.members(r)]:
            del self._located[robot_id]
            self._offered.pop(robot_id, None)
            out.extend(self._held.pop(robot_id, {}).values())
        for event in self.fleet.drain():
            if self.members(event.robot_id):
                out.append(event)
            else:
                self._hold(event)
        return out

    def arrivals(self) -> list[StatusReport]:
        """Located robots not in motion control yet, each by its latest status (again
        after RETRY_S if it could not join)."""
        now = self._clock.now()
        due = []
        for robot_id, status in self._located.items():
            if not self.members(robot_id) and now - self._offered.get(robot_id, -math.inf) >= self.RETRY_S:
                self._offered[robot_id] = now
                due.append(status)
        return due

    def _route_newcomers(self) -> None:
        for link, seen in self._adopting.items():
            for robot_id in link.robot_ids():
                if robot_id in seen:
                    continue
                seen.add(robot_id)
                try:
                    self.fleet.route(robot_id, link)
                except ValueError as exc:
                    log.error("robot %s not adopted: %s (robot ids must be unique across links)", robot_id, exc)

    def _hold(self, event: RobotEvent) -> None:
        held = self._held.setdefault(event.robot_id, {})
        if isinstance(event, StatusReport):
            if event.cell is not None and event.heading is not None:
                self._located[event.robot_id] = event
        elif isinstance(event, (BatteryReport, LoadChanged, ConnectionChanged)):
            held[type(event)] = event
        elif isinstance(event, ErrorRaised):
            held[event.code] = event
        elif isinstance(event, ErrorCleared):
            held.pop(event.code, None)


class PacedWorldLink(InProcessLink):
    """Emulated robots beside real ones: their world runs on the fleet's wall clock, which
    schedules nothing, so each drain (once per control cycle) first catches it up."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._paced = world

    def drain(self) -> list[RobotEvent]:
        self._paced.run_paced(self._paced.now())
        return super().drain()


def build_runtime(settings: Settings, store: Store, wmap: WarehouseMap | None = None,
                  wall_clock: WallClock | None = None) -> Runtime:
    """The fleet the settings describe, not started. Raises ConfigError for settings that
    only the assembled fleet can find wrong (a serial robot named like an emulated one).

    `wall_clock`, with real links only: a sped-up clock for a fleet whose robots on the
    wire are emulated and sped up as much (`fleet demo --speed`), so that the fleet's own
    timers (state timeouts, operators, order arrivals) keep pace with them. Real robots
    live in real time: without it the fleet runs on WallClock()."""
    from fleet.motion import MotionControl
    from fleet.traffic.control import TrafficControl
    from fleet.service.warehouse import build_warehouse, shelf_homes, stock_and_demand
    from fleet.workloads import shelves_on

    wmap = wmap or load_warehouse_map(settings.map.name)
    seed = settings.robots.seed
    real = settings.real_links
    if wall_clock is not None and not real:
        raise ValueError("a wall clock is for a fleet on real links; emulated robots alone run on simulated time")
    clock = (wall_clock or WallClock()) if real else SimulatedClock()
    scenario = stock_and_demand(settings, wmap)
    world = emulated_world(settings.robots.emulated or 0, wmap, clock, seed, scenario, _stored_places(store))
    adoption = _adoption(settings, wmap, clock, world) if real else None
    link: RobotLink = adoption if adoption is not None else InProcessLink(world)
    metrics = Metrics()
    motion = MotionControl(CountingLink(link, metrics), TrafficControl(wmap, rotation=True, seed=seed))
    for robot_id, unit in world.robots.items():
        motion.add_robot(robot_id, unit.cell, unit.heading)
    if adoption is not None:
        adoption.members = motion.robots.__contains__
    shelf_at = shelves_on(wmap, world.stored_shelf_at) if world.robots else _floor_shelves(store, shelf_homes(scenario))
    work = build_warehouse(settings, wmap, scenario, motion, store, clock.now())
    return Runtime(wmap, clock, motion, store, metrics, work=work,
                   shelves={shelf: (cell.x, cell.y) for cell, shelf in shelf_at.items()},
                   cycle_s=settings.runtime.cycle_s, speed=clock.speed if real else settings.runtime.speed,
                   thresholds=settings.thresholds,
                   arrivals=adoption.arrivals if adoption is not None else None)


def emulated_world(count: int, wmap: WarehouseMap, clock: Clock, seed: int, scenario: Scenario,
                   placed: dict[str, Cell] | None = None) -> World:
    """The emulated robots' world, with `count` robots on their start cells (maybe none),
    and the scenario's shelves, each as heavy as its stock (as in `fleet sim`), at their
    homes or where `placed` puts them. `fleet demo` builds its VDA 5050 vehicles' world
    with this too, from the service's scenario, so that its shelves stand where the
    service believes they do."""
    from firmware_emulator.placement import populate
    from firmware_emulator.world import World
    from fleet.service.warehouse import shelf_homes

    homes = shelf_homes(scenario)
    world = World(wmap, clock, seed=seed, shelves=homes | {s: c for s, c in (placed or {}).items() if s in homes})
    for shelf in scenario.inventory.shelves():
        world.set_shelf_weight(shelf.id, shelf.total_weight_kg)
    populate(world, count)
    return world


def _adoption(settings: Settings, wmap: WarehouseMap, clock: Clock, world: World) -> Adoption:
    """Every configured link behind one FleetLink, with adoption in front of it."""
    routes: dict[str, RobotLink] = {}
    links: list[RobotLink] = []
    adopting: list[RobotLink] = []
    try:
        if world.robots:
            inprocess = PacedWorldLink(world)
            links.append(inprocess)
            routes.update((robot_id, inprocess) for robot_id in world.robots)
        if settings.serial.robots:
            taken = sorted({r.id for r in settings.serial.robots} & set(routes))
            if taken:
                raise ConfigError(f"serial.robots: id(s) {taken} already taken by emulated robots")
            serial = _serial_link(settings.serial, clock)
            links.append(serial)
            routes.update((robot_id, serial) for robot_id in serial.robot_ids())
        if settings.broker.enabled:
            vda = _vda5050_link(settings.broker, wmap, clock)
            links.append(vda)
            adopting.append(vda)
        return Adoption(FleetLink(routes, links), adopting, clock)
    except BaseException:
        for link in links:
            link.close()
        raise


def _stored_places(store: Store) -> dict[str, Cell]:
    """Where the store last saw each shelf, for a world built anew (a restart): standing
    where it stood (an operator may have moved it), a carried one at its home."""
    return {shelf_id: Cell(row["cell_x"], row["cell_y"]) if row["robot"] is None else Cell(row["home_x"], row["home_y"])
            for shelf_id, row in store.shelves().items()}


def _floor_shelves(store: Store, homes: dict[str, Cell]) -> dict[Cell, str]:
    """Cell -> shelf standing on it, on a floor the service cannot see: where the store
    last saw each shelf (a restart), else the scenario's homes (a first start)."""
    known = store.shelves()
    if known:
        return {Cell(row["cell_x"], row["cell_y"]): shelf_id for shelf_id, row in known.items()
                if row["cell_x"] is not None and row["robot"] is None}
    return {cell: shelf_id for shelf_id, cell in homes.items()}


def _serial_link(serial: SerialSettings, clock: Clock) -> SerialLink:
    from drivers.serial.link import SerialLink, SerialRobot
    from drivers.serial.port import PortSettings

    robots = [SerialRobot(r.id, PortSettings(r.port, r.baudrate, r.options())) for r in serial.robots]
    try:
        return SerialLink(robots, clock, serial.link_settings())
    except ValueError as exc:  # an option pyserial refuses for this kind of port
        raise ConfigError(f"serial.robots: {exc}") from None


def _vda5050_link(broker: BrokerSettings, wmap: WarehouseMap, clock: Clock) -> Vda5050Link:
    from drivers.vda5050.link import Vda5050Link
    from drivers.vda5050.mqtt import BrokerConfig, TopicLayout, VehicleId

    options: dict[str, object] = {"ca_certs": broker.ca_file, "certfile": broker.cert_file,
                                  "keyfile": broker.key_file, "tls_insecure": broker.tls_insecure}
    if broker.tls:  # else as the URL says: mqtts:// is TLS
        options["tls"] = True
    if broker.username is not None:
        options["username"] = broker.username
    if broker.password is not None:
        options["password"] = broker.password
    vehicles = [VehicleId(broker.manufacturer or "", serial) for serial in broker.vehicles]
    config = BrokerConfig.from_url(broker.url, **options)
    link = Vda5050Link(config, wmap, vehicles=vehicles, adopt=not vehicles,
                       layout=TopicLayout(interface_name=broker.interface, prefix=broker.topic_prefix),
                       clock=clock, state_timeout=broker.state_timeout_s)
    if not link.start(timeout=5.0):
        # The broker may come later: the link keeps trying, as after a lost connection.
        log.warning("broker %s:%d not reachable yet; retrying in the background", config.host, config.port)
    return link
