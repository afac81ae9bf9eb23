"""RobotLink over VDA 5050: one MQTT connection for the master, one session per vehicle.

The fleet sees robots by id (a vehicle's serial number unless told otherwise). Vehicles
come from a configured list, or are adopted when they announce themselves under our
interface (connection ONLINE, then a state); with `adopt=False` only the configured ones
are heard and the rest is dropped as unknown by the MQTT link.

Thread model: paho's network thread delivers messages, the fleet's thread calls the
RobotLink methods; one lock serialises both around the sessions, which are not
thread-safe. Resends and the staleness check run on the fleet's thread, in `drain()`,
so a fleet shell that drains regularly (it must, to see events) keeps them going.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from drivers.commands import InstantCommand, Job, Step
from drivers.events import RobotEvent
from drivers.link import RobotLink, UnknownRobot
from drivers.vda5050.master import VehicleSession
from drivers.vda5050.messages import Connection, ConnectionState, Factsheet, State, Wire
from drivers.vda5050.mqtt import FROM_VEHICLE, BrokerConfig, MqttLink, Received, Topic, TopicLayout, VehicleId
from fleet.clock import Clock, WallClock
from maps.model import Cell, WarehouseMap

log = logging.getLogger(__name__)


class Vda5050Link(RobotLink):
    TICK_INTERVAL = 0.1  # s between resend/staleness passes over all sessions, however often drained

    def __init__(
        self,
        broker: BrokerConfig | str,
        warehouse: WarehouseMap,
        *,
        vehicles: Iterable[VehicleId] = (),
        adopt: bool = True,
        layout: TopicLayout = TopicLayout(),
        clock: Clock | None = None,
        state_timeout: float = 35.0,
        resend_interval: float = 1.0,
        robot_id_of: Callable[[VehicleId], str] = lambda vehicle: vehicle.serial_number,
    ) -> None:
        self.warehouse = warehouse
        self._clock = clock or WallClock()
        self._state_timeout = state_timeout
        self._resend_interval = resend_interval
        self._robot_id_of = robot_id_of
        self._lock = threading.RLock()
        # Messages the sessions want sent, published after the lock is released: publishing
        # (stamp, encode, socket write) under it would hold up the network thread's handling
        # of incoming states, which delays echoes and triggers more resends.
        self._outbox: list[tuple[Wire, Topic, VehicleId]] = []
        self._send_lock = threading.Lock()  # keeps publishes in the order the sessions made them
        self._ticked = -float("inf")
        self._events: list[RobotEvent] = []  # shared by all sessions: arrival order across robots
        self._sessions: dict[str, VehicleSession] = {}
        self._by_vehicle: dict[VehicleId, VehicleSession] = {}
        self._announced: dict[VehicleId, Connection] = {}  # ONLINE seen, adopted at their first state
        self._factsheets: dict[VehicleId, Factsheet] = {}  # arrived before adoption
        self._unadopted_states: dict[VehicleId, State] = {}  # the latest, until ONLINE comes
        self._configured = frozenset(vehicles)
        for vehicle in self._configured:
            self._add(vehicle)
        self.mqtt = MqttLink(
            broker,
            subscriptions=sorted(FROM_VEHICLE),
            on_message=self._receive,
            layout=layout,
            accept=None if adopt else self._configured.__contains__,
            clock=self._clock,
        )
        self._adopt = adopt

    def start(self, timeout: float | None = 10.0) -> bool:
        return self.mqtt.start(timeout)

    # --- RobotLink ---------------------------------------------------------------------------

    def robot_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._sessions)

    def send_job(self, robot_id: str, job: Job) -> None:
        with self._serialised():
            self._session(robot_id).send_job(job, self._clock.now())

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        with self._serialised():
            self._session(robot_id).extend_job(job_id, steps, self._clock.now())

    def takes_preview(self, robot_id: str) -> bool:
        return True

    def preview(self, robot_id: str, job_id: str, cells: Sequence[Cell]) -> None:
        """Sent as the order's horizon (released false), replaced by every update."""
        with self._serialised():
            self._session(robot_id).preview(job_id, cells, self._clock.now())

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        with self._serialised():
            self._session(robot_id).instant(command, self._clock.now())

    def drain(self) -> list[RobotEvent]:
        with self._serialised():
            now = self._clock.now()
            if now - self._ticked >= self.TICK_INTERVAL:  # resends are due in seconds, not ms
                self._ticked = now
                for session in self._sessions.values():
                    if now >= session.due:
                        session.tick(now)
            drained, self._events[:] = list(self._events), []
            return drained

    def close(self) -> None:
        self.mqtt.close()

    def session(self, robot_id: str) -> VehicleSession:
        """The vehicle's session, for inspection (what it knows, what it ignored)."""
        with self._lock:
            return self._session(robot_id)

    # --- inside -------------------------------------------------------------------------------

    def _session(self, robot_id: str) -> VehicleSession:
        try:
            return self._sessions[robot_id]
        except KeyError:
            raise UnknownRobot(robot_id) from None

    def _add(self, vehicle: VehicleId) -> VehicleSession:
        robot_id = self._robot_id_of(vehicle)
        if robot_id in self._sessions:
            raise ValueError(f"vehicles {self._sessions[robot_id].vehicle} and {vehicle} "
                             f"would both be robot {robot_id!r}")
        session = VehicleSession(
            robot_id, vehicle, self.warehouse, lambda message, topic: self._publish(message, topic, vehicle),
            state_timeout=self._state_timeout, resend_interval=self._resend_interval,
            events=self._events,
        )
        self._sessions[robot_id] = session
        self._by_vehicle[vehicle] = session
        return session

    def _publish(self, message: Wire, topic: Topic, vehicle: VehicleId) -> bool:
        self._outbox.append((message, topic, vehicle))
        return True

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        """Hold the sessions' lock for the block, then publish what they queued."""
        try:
            with self._lock:
                yield
        finally:
            self._flush()

    def _flush(self) -> None:
        if not self._outbox:  # most states ask for no answer; whoever queues also flushes
            return
        with self._send_lock:
            with self._lock:
                outgoing, self._outbox = self._outbox, []
            for message, topic, vehicle in outgoing:
                self.mqtt.publish(message, topic, vehicle)

    def _receive(self, received: Received) -> None:
        with self._serialised():
            vehicle, message, now = received.vehicle, received.message, received.time
            session = self._by_vehicle.get(vehicle)
            if session is None:
                self._consider_adoption(vehicle, message, now)
                return
            if isinstance(message, State):
                session.on_state(message, now)
            elif isinstance(message, Connection):
                session.on_connection(message, now)
            elif isinstance(message, Factsheet):
                session.on_factsheet(message, now)
            # visualization: positions for display only; the fleet localises from state

    def _consider_adoption(self, vehicle: VehicleId, message: object, now: float) -> None:
        """A vehicle we do not know yet is adopted once we have both its ONLINE and a state,
        in either order (they travel at different QoS and may overtake each other)."""
        if not self._adopt:
            return
        if isinstance(message, Factsheet):
            self._factsheets[vehicle] = message
        elif isinstance(message, State):
            self._unadopted_states[vehicle] = message
        elif isinstance(message, Connection):
            if message.connection_state is ConnectionState.ONLINE:
                self._announced[vehicle] = message
            else:
                self._announced.pop(vehicle, None)
        if vehicle not in self._announced or vehicle not in self._unadopted_states:
            return
        try:
            session = self._add(vehicle)
        except ValueError as exc:
            log.warning("not adopting %s: %s", vehicle, exc)
            return
        state = self._unadopted_states.pop(vehicle)
        log.info("adopted vehicle %s as robot %s (protocol %s)", vehicle, session.robot_id, state.version)
        factsheet = self._factsheets.pop(vehicle, None)
        if factsheet is not None:
            session.on_factsheet(factsheet, now)
        session.on_connection(self._announced.pop(vehicle), now)  # asks for what it lacks
        session.on_state(state, now)  # held until now: the time the fleet hears of it
