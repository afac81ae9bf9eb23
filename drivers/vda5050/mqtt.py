"""A thin MQTT client for VDA 5050, used by both sides: the master and each vehicle.

It owns what the specification says about the wire and nothing about orders: the topic
layout interfaceName/majorVersion/manufacturer/serialNumber/topic, QoS 0 everywhere but
QoS 1 on `connection`, the retained `connection` and `factsheet`, per-topic headerIds,
the Last Will, ONLINE on every (re)connect and OFFLINE on a graceful close, automatic
reconnection with resubscription. Above it, the master and the emulated vehicle deal only
in parsed messages.

Input is hostile until proven otherwise: a payload that is not valid JSON, violates the
schema, names another vehicle than its topic, comes from a vehicle we do not accept, or
repeats an old headerId is counted under its reason, logged (the first time for that
reason and topic), and dropped. Nothing raised while handling a message escapes into
paho's network thread, which would stop the link for every vehicle.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Callable, Iterable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from drivers.vda5050.messages import (
    LATEST_VERSION,
    Connection,
    ConnectionState,
    Factsheet,
    InstantActions,
    MessageError,
    Order,
    State,
    Visualization,
    Wire,
    decode,
    encode_stamped,
    format_timestamp,
)
from fleet.clock import Clock, WallClock

log = logging.getLogger(__name__)


class Topic(StrEnum):
    ORDER = "order"
    INSTANT_ACTIONS = "instantActions"
    STATE = "state"
    VISUALIZATION = "visualization"
    CONNECTION = "connection"
    FACTSHEET = "factsheet"


MODEL: dict[Topic, type[Wire]] = {
    Topic.ORDER: Order,
    Topic.INSTANT_ACTIONS: InstantActions,
    Topic.STATE: State,
    Topic.VISUALIZATION: Visualization,
    Topic.CONNECTION: Connection,
    Topic.FACTSHEET: Factsheet,
}
QOS: dict[Topic, int] = {topic: 1 if topic is Topic.CONNECTION else 0 for topic in Topic}
RETAINED = frozenset({Topic.CONNECTION, Topic.FACTSHEET})
FROM_MASTER = frozenset({Topic.ORDER, Topic.INSTANT_ACTIONS})
FROM_VEHICLE = frozenset(Topic) - FROM_MASTER

_FORBIDDEN_IN_LEVEL = ("/", "+", "#", "$")


@dataclass(frozen=True, order=True)
class VehicleId:
    manufacturer: str
    serial_number: str

    def __post_init__(self) -> None:
        for label, level in (("manufacturer", self.manufacturer), ("serialNumber", self.serial_number)):
            if not level or any(char in level for char in _FORBIDDEN_IN_LEVEL):
                raise ValueError(f"{label} {level!r} cannot be an MQTT topic level (empty, or has / + # $)")

    def __str__(self) -> str:
        return f"{self.manufacturer}/{self.serial_number}"


@dataclass(frozen=True)
class TopicLayout:
    """interfaceName/majorVersion/manufacturer/serialNumber/topic, behind an optional prefix
    (cloud brokers often impose one)."""

    interface_name: str = "uagv"
    major_version: str = "v2"
    prefix: str = ""

    @cached_property  # every topic name is built on it, one per message sent
    def base(self) -> str:
        return "/".join(part for part in (self.prefix.strip("/"), self.interface_name, self.major_version) if part)

    def topic(self, vehicle: VehicleId, topic: Topic) -> str:
        return f"{self.base}/{vehicle.manufacturer}/{vehicle.serial_number}/{topic}"

    def subscription(self, topic: Topic, vehicle: VehicleId | None = None) -> str:
        """The filter for one topic of one vehicle, or of every vehicle."""
        if vehicle is None:
            return f"{self.base}/+/+/{topic}"
        return self.topic(vehicle, topic)

    def parse(self, name: str) -> tuple[VehicleId, Topic] | None:
        """The vehicle and topic an MQTT topic name stands for, None if it is not ours."""
        return _parse_topic(self.base, name)


@lru_cache(maxsize=1 << 16)  # a fleet has a few topics per vehicle; fuzz cannot grow it unbounded
def _parse_topic(base: str, name: str) -> tuple[VehicleId, Topic] | None:
    head, _, rest = name.partition(base + "/")
    if head or not rest:
        return None
    levels = rest.split("/")
    if len(levels) != 3 or levels[2] not in Topic._value2member_map_:
        return None
    try:
        return VehicleId(levels[0], levels[1]), Topic(levels[2])
    except ValueError:
        return None


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None  # CA bundle to verify the broker; None: system defaults
    certfile: str | None = None  # client certificate, for brokers that require one
    keyfile: str | None = None
    tls_insecure: bool = False  # skip the host name check (test brokers only)
    keepalive: int = 15  # seconds; the specification suggests about 15 s
    client_id: str = ""  # empty: paho picks a random one

    @classmethod
    def from_url(cls, url: str, **options: object) -> BrokerConfig:
        """mqtt://[user[:password]@]host[:port] or mqtts://... (TLS, default port 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"broker URL {url!r} has an invalid port") from None
        tls = parts.scheme == "mqtts"
        values: dict[str, object] = {
            "host": parts.hostname,
            "port": port or (8883 if tls else 1883),
            "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
        }
        return cls(**(values | options))  # type: ignore[arg-type]


class Drop(StrEnum):
    """Why an incoming message was dropped."""

    FOREIGN_TOPIC = "topic outside the layout"
    UNKNOWN_VEHICLE = "unknown vehicle"
    BAD_JSON = "bad JSON"
    SCHEMA = "schema violation"
    WRONG_VEHICLE = "header names another vehicle than the topic"
    STALE = "stale or duplicated headerId"
    HANDLER_ERROR = "handler raised"


@dataclass(frozen=True)
class Received:
    vehicle: VehicleId
    topic: Topic
    message: Wire
    retained: bool
    time: float  # the link's clock when it arrived: order by this, not the vehicle's clock


class MqttLink:
    """One MQTT connection: the master's (vehicle=None) or one vehicle's own.

    The master subscribes to its topics for every vehicle (`accept` decides which vehicles
    it listens to); a vehicle subscribes to its own topics and has the link manage its
    connection topic: Last Will CONNECTIONBROKEN, ONLINE after every connect, OFFLINE on
    close. `on_message` and `on_connect` run on paho's network thread.
    """

    def __init__(
        self,
        broker: BrokerConfig | str,
        *,
        subscriptions: Iterable[Topic],
        on_message: Callable[[Received], None],
        vehicle: VehicleId | None = None,
        version: str = LATEST_VERSION,
        layout: TopicLayout = TopicLayout(),
        accept: Callable[[VehicleId], bool] | None = None,
        on_connect: Callable[[], None] | None = None,
        clock: Clock | None = None,
        utc_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        reconnect_delay: tuple[int, int] = (1, 8),
    ) -> None:
        self.broker = BrokerConfig.from_url(broker) if isinstance(broker, str) else broker
        self.vehicle = vehicle
        self.version = version
        self.layout = layout
        self.subscriptions = tuple(subscriptions)
        self.dropped: Counter[Drop] = Counter()
        self.received = 0
        self.last_drop: dict[Drop, str] = {}
        self.refusal: str | None = None  # the broker's reason the last time it refused us
        self.connect_failures = 0  # attempts that failed before MQTT (no route, TLS handshake)
        self._on_message = on_message
        self._on_connect = on_connect
        self._accept = accept
        self._clock = clock or WallClock()
        self._utc_now = utc_now
        self._header_ids: Counter[tuple[VehicleId, Topic]] = Counter()
        self._topic_names: dict[tuple[VehicleId, Topic], str] = {}
        self._header_lock = threading.Lock()
        self._last_seen: dict[tuple[VehicleId, Topic], int] = {}
        self._last_connection: dict[VehicleId, tuple[int, str, str]] = {}
        self._logged: set[tuple[Drop, str]] = set()
        self._connected = threading.Event()  # connected and subscribed
        self._subscription_mid: int | None = None
        self._closed = False
        self._client = self._make_client(reconnect_delay)

    # --- lifecycle -------------------------------------------------------------------------

    def _make_client(self, reconnect_delay: tuple[int, int]) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.broker.client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set(
                ca_certs=self.broker.ca_certs,
                certfile=self.broker.certfile,
                keyfile=self.broker.keyfile,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(self.broker.tls_insecure)
        if self.vehicle is not None:
            will = self._stamp(self._connection(ConnectionState.CONNECTIONBROKEN), self.vehicle, Topic.CONNECTION)
            client.will_set(self.layout.topic(self.vehicle, Topic.CONNECTION), will, qos=1, retain=True)
        client.reconnect_delay_set(*reconnect_delay)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_connect_fail = self._handle_connect_fail
        client.on_subscribe = self._handle_subscribe
        client.on_message = self._handle_message
        return client

    def start(self, timeout: float | None = 10.0) -> bool:
        """Connect in the background; with a timeout, wait for it and say whether it worked.

        A broker that is not there yet is retried, like a lost connection.
        """
        self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        self._client.loop_start()
        return self.wait_connected(timeout) if timeout else False

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed (the broker acknowledged the subscriptions)."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Leave gracefully: a vehicle says OFFLINE first, so the broker sends no Last Will."""
        if self._closed:
            return
        self._closed = True
        if self.vehicle is not None and self.connected:
            info = self._publish(self._connection(ConnectionState.OFFLINE), self.vehicle, Topic.CONNECTION)
            if info is not None:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError):
                    log.warning("vehicle %s: OFFLINE not confirmed before closing", self.vehicle)
        self._client.disconnect()
        self._stop_network_thread()
        self._connected.clear()

    def _stop_network_thread(self) -> None:
        """paho's loop_stop reads its thread twice and raises AttributeError if the thread
        ended in between (a disconnect ends it; seen with 250 clients in one process under
        load). Either way the thread is gone, which is all we want."""
        try:
            self._client.loop_stop()
        except AttributeError:
            pass

    def sever(self) -> None:
        """Lose the network without a word, as a vehicle whose radio drops: the socket dies,
        no DISCONNECT goes out, so the broker publishes the Last Will. No reconnecting until
        restore(). Must not be called from a message handler (it stops the network thread)."""
        if self._closed:
            return
        self._stop_network_thread()
        self._connected.clear()
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        """The network is back: reconnect (ONLINE again) and keep retrying if the broker is away."""
        if self._closed:
            return
        try:
            self._client.reconnect()
        except (OSError, ValueError) as exc:
            log.warning("vehicle %s: reconnect failed (%s); retrying", self.vehicle, exc)
        self._client.loop_start()

    # --- sending -----------------------------------------------------------------------------

    def publish(self, message: Wire, topic: Topic, vehicle: VehicleId | None = None) -> bool:
        """Stamp the header (next headerId of this vehicle and topic, current time) and send.

        The vehicle is `vehicle` if the sender knows it (the master's sessions do), else the
        message's manufacturer/serialNumber, or this link's vehicle.
        Returns False if the message could not be handed to a connection (QoS 0 while
        disconnected is lost, as on any MQTT client: the master resends until echoed).
        """
        info = self._publish(message, vehicle or self._vehicle_of(message), topic)
        return info is not None and info.rc == paho.MQTT_ERR_SUCCESS

    def _vehicle_of(self, message: Wire) -> VehicleId:
        manufacturer = getattr(message, "manufacturer", None)
        serial = getattr(message, "serial_number", None)
        if manufacturer and serial:
            return VehicleId(manufacturer, serial)
        if self.vehicle is None:
            raise ValueError(f"{type(message).__name__} names no vehicle and this link is the master's")
        return self.vehicle

    def _publish(self, message: Wire, vehicle: VehicleId, topic: Topic) -> paho.MQTTMessageInfo | None:
        if not isinstance(message, MODEL[topic]):
            raise TypeError(f"a {type(message).__name__} cannot go on the {topic} topic")
        payload = self._stamp(message, vehicle, topic)
        name = self._topic_names.get((vehicle, topic))
        if name is None:
            name = self._topic_names[vehicle, topic] = self.layout.topic(vehicle, topic)
        try:
            return self._client.publish(name, payload, qos=QOS[topic], retain=topic in RETAINED)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("publish %s to %s failed: %s", topic, vehicle, exc)
            return None

    def _stamp(self, message: Wire, vehicle: VehicleId, topic: Topic) -> bytes:
        """The message's JSON with the next headerId of this vehicle and topic and the time."""
        with self._header_lock:
            header_id = self._header_ids[vehicle, topic]
            self._header_ids[vehicle, topic] = header_id + 1
        return encode_stamped(message, header_id, format_timestamp(self._utc_now()))

    def _connection(self, state: ConnectionState) -> Connection:
        assert self.vehicle is not None
        return Connection(
            header_id=0,
            timestamp=format_timestamp(self._utc_now()),
            version=self.version,
            manufacturer=self.vehicle.manufacturer,
            serial_number=self.vehicle.serial_number,
            connection_state=state,
        )

    # --- paho callbacks (network thread) ---------------------------------------------------------

    def _handle_connect(self, client: paho.Client, userdata: object, flags: object,
                        reason_code: paho.ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            self.refusal = str(reason_code)
            log.warning("MQTT connect to %s:%s refused: %s", self.broker.host, self.broker.port, reason_code)
            return
        self.refusal = None
        filters = [(self.layout.subscription(topic, self.vehicle), QOS[topic]) for topic in self.subscriptions]
        if filters:
            _, self._subscription_mid = client.subscribe(filters)
        else:
            self._ready()

    def _handle_subscribe(self, client: paho.Client, userdata: object, mid: int,
                          reason_codes: list[paho.ReasonCode], properties: object) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.warning("MQTT broker refused subscriptions: %s", ", ".join(map(str, refused)))
        if mid == self._subscription_mid:
            self._ready()

    def _ready(self) -> None:
        """Connected and subscribed: only now can we hear what we announce ourselves for."""
        if self.vehicle is not None:
            self._publish(self._connection(ConnectionState.ONLINE), self.vehicle, Topic.CONNECTION)
        self._connected.set()
        log.info("MQTT connected to %s:%s", self.broker.host, self.broker.port)
        if self._on_connect is not None:
            try:
                self._on_connect()
            except Exception:
                log.exception("on_connect hook raised")

    def _handle_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self.connect_failures += 1
        if self.connect_failures == 1:
            log.warning("cannot reach MQTT broker %s:%s (TLS: %s); retrying",
                        self.broker.host, self.broker.port, self.broker.tls)

    def _handle_disconnect(self, client: paho.Client, userdata: object, flags: object,
                           reason_code: paho.ReasonCode, properties: object) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting",
                        self.broker.host, self.broker.port, reason_code)

    def _handle_message(self, client: paho.Client, userdata: object, mqtt_message: paho.MQTTMessage) -> None:
        try:
            received = self._admit(mqtt_message)
            if received is not None:
                self.received += 1
                self._on_message(received)
        except Exception as exc:  # never into paho's thread: it would stop every vehicle's traffic
            self._drop(Drop.HANDLER_ERROR, mqtt_message.topic, repr(exc))
            if (Drop.HANDLER_ERROR, "trace") not in self._logged:
                self._logged.add((Drop.HANDLER_ERROR, "trace"))
                log.exception("message handler raised on %s", mqtt_message.topic)

    def _admit(self, mqtt_message: paho.MQTTMessage) -> Received | None:
        """The message parsed and checked, or None (dropped, with the reason counted)."""
        name = mqtt_message.topic
        parsed = self.layout.parse(name)
        if parsed is None:
            return self._drop(Drop.FOREIGN_TOPIC, name, name)
        vehicle, topic = parsed
        if self._accept is not None and topic in FROM_VEHICLE and not self._accept(vehicle):
            return self._drop(Drop.UNKNOWN_VEHICLE, name, str(vehicle))
        try:
            message = decode(MODEL[topic], mqtt_message.payload)
        except MessageError as exc:
            reason = Drop.BAD_JSON if exc.reason == "bad JSON" else Drop.SCHEMA
            return self._drop(reason, name, exc.detail)
        named = (getattr(message, "manufacturer", None), getattr(message, "serial_number", None))
        if named != (None, None) and named != (vehicle.manufacturer, vehicle.serial_number):
            return self._drop(Drop.WRONG_VEHICLE, name, f"header says {named[0]}/{named[1]}")
        if topic in FROM_VEHICLE and self._repeated(vehicle, topic, message):
            return self._drop(Drop.STALE, name, f"headerId {getattr(message, 'header_id', None)}")
        return Received(vehicle, topic, message, bool(mqtt_message.retain), self._clock.now())

    def _repeated(self, vehicle: VehicleId, topic: Topic, message: Wire) -> bool:
        """True for a headerId at or below the last one seen on this vehicle's topic.

        The connection topic is different: its Last Will carries the headerId of the time
        it was set, older than the ONLINE before it, so there only an exact repeat (a
        retained message delivered again) counts. A new ONLINE starts a new session, whose
        counters may have restarted from zero with the vehicle.
        """
        header_id = getattr(message, "header_id", None)
        if header_id is None:
            return False
        if isinstance(message, Connection):
            signature = (header_id, message.timestamp, message.connection_state.value)
            if self._last_connection.get(vehicle) == signature:
                return True
            self._last_connection[vehicle] = signature
            if message.connection_state is ConnectionState.ONLINE:
                for other in FROM_VEHICLE - {Topic.CONNECTION}:
                    self._last_seen.pop((vehicle, other), None)
            return False
        last = self._last_seen.get((vehicle, topic))
        if last is not None and header_id <= last:
            return True
        self._last_seen[vehicle, topic] = header_id
        return False

    def _drop(self, reason: Drop, topic_name: str, detail: str) -> None:
        self.dropped[reason] += 1
        self.last_drop[reason] = f"{topic_name}: {detail}"
        last_level = topic_name.rsplit("/", 1)[-1]
        topic_kind = last_level if last_level in Topic._value2member_map_ else "other"
        if (reason, topic_kind) in self._logged:
            log.debug("dropped (%s) %s: %s", reason.value, topic_name, detail)
        else:
            self._logged.add((reason, topic_kind))
            log.warning("dropped (%s) %s: %s [further drops of this kind are counted, not logged]",
                        reason.value, topic_name, detail)
        return None
