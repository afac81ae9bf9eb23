"""The VDA 5050 MQTT link against a real, private Mosquitto broker (see conftest.py)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Callable

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.vda5050 import messages as m
from drivers.vda5050.messages import encode
from drivers.vda5050.mqtt import (
    FROM_MASTER,
    FROM_VEHICLE,
    BrokerConfig,
    Drop,
    MqttLink,
    Received,
    Topic,
    TopicLayout,
    VehicleId,
)
from shared_data import REPO_ROOT
from vda5050_samples import (
    MANUFACTURER,
    factsheet_full,
    header,
    instant_actions_full,
    order_full,
    state_full,
    state_minimal,
    visualization_full,
)



def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Inbox:
    """Collects what a link hands over, thread-safely."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._lock = threading.Lock()

    def __call__(self, received: Received) -> None:
        with self._lock:
            self.items.append(received)

    def of(self, topic: Topic, vehicle: VehicleId | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.items if r.topic is topic and (vehicle is None or r.vehicle == vehicle)]

    def connection_states(self, vehicle: VehicleId) -> list[m.ConnectionState]:
        return [r.message.connection_state for r in self.of(Topic.CONNECTION, vehicle)]


def unique_layout() -> TopicLayout:
    """Each test gets its own interface name: the session broker is shared and keeps
    retained messages, so tests must not see each other's."""
    return TopicLayout(interface_name=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def layout() -> TopicLayout:
    return unique_layout()


def serial(n: int) -> str:
    return f"AGV-{n:03d}"


def vehicle_id(n: int = 1) -> VehicleId:
    return VehicleId(MANUFACTURER, serial(n))


class Links:
    """Starts links and closes them all at the end of the test."""

    def __init__(self) -> None:
        self.started: list[MqttLink] = []

    def master(self, url: str, layout: TopicLayout, inbox: Inbox, **options) -> MqttLink:
        link = MqttLink(url, subscriptions=sorted(FROM_VEHICLE), on_message=inbox, layout=layout, **options)
        return self._start(link)

    def vehicle(self, url: str, layout: TopicLayout, inbox: Inbox, n: int = 1, **options) -> MqttLink:
        link = MqttLink(url, subscriptions=sorted(FROM_MASTER), on_message=inbox, layout=layout,
                        vehicle=vehicle_id(n), **options)
        return self._start(link)

    def _start(self, link: MqttLink) -> MqttLink:
        self.started.append(link)
        assert link.start(timeout=10), "link did not connect"
        return link

    def close(self) -> None:
        for link in self.started:
            link.close()


@pytest.fixture
def links():
    made = Links()
    yield made
    made.close()


class Spy:
    """A plain paho client that records every raw message under a filter (QoS 1)."""

    def __init__(self, url: str, topic_filter: str) -> None:
        config = BrokerConfig.from_url(url)
        self.messages: list[paho.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, msg: self.messages.append(msg)
        self.client.connect(config.host, config.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "spy did not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Raw:
    """A plain paho publisher, for payloads our own link would never produce."""

    def __init__(self, url: str) -> None:
        config = BrokerConfig.from_url(url)
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.connect(config.host, config.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- pure parts: layout and broker URL --------------------------------------------------------

def test_topic_layout_default_and_prefixed():
    agv = VehicleId("KIT", "0001")
    assert TopicLayout().topic(agv, Topic.ORDER) == "uagv/v2/KIT/0001/order"
    assert TopicLayout().subscription(Topic.STATE) == "uagv/v2/+/+/state"
    custom = TopicLayout(interface_name="wms", major_version="v2", prefix="site-3/")
    assert custom.topic(agv, Topic.CONNECTION) == "site-3/wms/v2/KIT/0001/connection"
    assert custom.parse("site-3/wms/v2/KIT/0001/connection") == (agv, Topic.CONNECTION)
    for foreign in ("uagv/v2/KIT/0001/order", "site-3/wms/v2/KIT/0001/orders",
                    "site-3/wms/v2/KIT/0001/state/x", "site-3/wms/v2/KIT/state", "x/site-3/wms/v2/KIT/0001/state"):
        assert custom.parse(foreign) is None


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "$SYS"])
def test_vehicle_names_that_cannot_be_topic_levels_are_refused(bad):
    with pytest.raises(ValueError, match="cannot be an MQTT topic level"):
        VehicleId("KIT", bad)


def test_broker_url_forms():
    plain = BrokerConfig.from_url("mqtt://broker.local")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("broker.local", 1883, False, None)
    secure = BrokerConfig.from_url("mqtts://fleet:p%40ss@10.0.0.5", ca_certs="/etc/ca.pem")
    assert (secure.port, secure.tls, secure.username, secure.password, secure.ca_certs) == (
        8883, True, "fleet", "p@ss", "/etc/ca.pem")
    assert "p@ss" not in repr(secure)
    assert BrokerConfig.from_url("mqtt://h:2000").port == 2000
    with pytest.raises(ValueError, match="scheme must be mqtt:// or mqtts://"):
        BrokerConfig.from_url("http://h")
    with pytest.raises(ValueError, match="invalid port"):
        BrokerConfig.from_url("mqtt://h:99999")
    with pytest.raises(ValueError, match="no host"):
        BrokerConfig.from_url("mqtt://")


# --- against the broker ------------------------------------------------------------------------

def test_each_message_type_round_trips_through_the_broker_with_its_qos_and_retain(mqtt_url, layout, links):
    spy = Spy(mqtt_url, f"{layout.base}/#")
    master_inbox, vehicle_inbox = Inbox(), Inbox()
    master = links.master(mqtt_url, layout, master_inbox)
    vehicle = links.vehicle(mqtt_url, layout, vehicle_inbox)
    agv = vehicle_id()
    wait_until(lambda: master_inbox.connection_states(agv) == [m.ConnectionState.ONLINE], what="ONLINE")

    sent = {
        Topic.STATE: state_full(),
        Topic.VISUALIZATION: visualization_full(),
        Topic.FACTSHEET: factsheet_full(),
        Topic.ORDER: order_full(),
        Topic.INSTANT_ACTIONS: instant_actions_full(),
    }
    for topic in (Topic.STATE, Topic.VISUALIZATION, Topic.FACTSHEET):
        assert vehicle.publish(sent[topic], topic)
    for topic in (Topic.ORDER, Topic.INSTANT_ACTIONS):
        assert master.publish(sent[topic], topic)
    wait_until(lambda: all(master_inbox.of(t) for t in (Topic.STATE, Topic.VISUALIZATION, Topic.FACTSHEET))
               and all(vehicle_inbox.of(t) for t in (Topic.ORDER, Topic.INSTANT_ACTIONS)), what="deliveries")

    def same_but_header(received: m.Wire, original: m.Wire) -> bool:
        blank = {"header_id": 0, "timestamp": "2000-01-01T00:00:00.000Z"}
        return received.model_copy(update=blank) == original.model_copy(update=blank)

    for topic, inbox in ((Topic.STATE, master_inbox), (Topic.VISUALIZATION, master_inbox),
                         (Topic.FACTSHEET, master_inbox), (Topic.ORDER, vehicle_inbox),
                         (Topic.INSTANT_ACTIONS, vehicle_inbox)):
        [received] = inbox.of(topic)
        assert received.vehicle == agv
        assert same_but_header(received.message, sent[topic])

    wait_until(lambda: len(spy.messages) >= 6, what="spy")
    qos = {msg.topic.rsplit("/", 1)[-1]: msg.qos for msg in spy.messages}
    assert qos == {"connection": 1, "state": 0, "visualization": 0, "factsheet": 0,
                   "order": 0, "instantActions": 0}
    spy.close()
    # A late subscriber is handed exactly the retained topics: connection and factsheet.
    late = Spy(mqtt_url, f"{layout.base}/#")
    wait_until(lambda: len(late.messages) >= 2, what="retained messages")
    time.sleep(0.2)
    assert sorted((msg.topic.rsplit("/", 1)[-1], msg.retain) for msg in late.messages) == [
        ("connection", True), ("factsheet", True)]
    late.close()
    assert master.dropped == {} and vehicle.dropped == {}


def test_header_ids_count_per_topic_and_timestamps_are_utc_milliseconds(mqtt_url, layout, links):
    inbox = Inbox()
    links.master(mqtt_url, layout, inbox)
    vehicle = links.vehicle(mqtt_url, layout, Inbox())
    for _ in range(3):
        vehicle.publish(state_minimal(), Topic.STATE)
    for _ in range(2):
        vehicle.publish(visualization_full(), Topic.VISUALIZATION)
    wait_until(lambda: len(inbox.of(Topic.STATE)) == 3 and len(inbox.of(Topic.VISUALIZATION)) == 2)
    assert [r.message.header_id for r in inbox.of(Topic.STATE)] == [0, 1, 2]
    assert [r.message.header_id for r in inbox.of(Topic.VISUALIZATION)] == [0, 1]
    # The Last Will took connection headerId 0 when it was set; ONLINE came next.
    assert [r.message.header_id for r in inbox.of(Topic.CONNECTION)] == [1]
    for received in inbox.items:
        assert received.message.timestamp.endswith("Z") and len(received.message.timestamp) == 24


def test_a_message_goes_only_on_its_own_topic(mqtt_url, layout, links):
    master = links.master(mqtt_url, layout, Inbox())
    with pytest.raises(TypeError, match="cannot go on the state topic"):
        master.publish(order_full(), Topic.STATE)
    with pytest.raises(ValueError, match="names no vehicle"):
        master.publish(m.Visualization(), Topic.VISUALIZATION)


VEHICLE_SCRIPT = """
import sys, time
from drivers.vda5050.mqtt import MqttLink, VehicleId, TopicLayout, FROM_MASTER
link = MqttLink(sys.argv[1], subscriptions=FROM_MASTER, on_message=lambda r: None,
                vehicle=VehicleId(sys.argv[3], sys.argv[4]), layout=TopicLayout(interface_name=sys.argv[2]))
assert link.start(timeout=10)
print("ready", flush=True)
time.sleep(60)
"""


def test_last_will_connectionbroken_when_a_vehicle_dies_uncleanly(mqtt_url, layout, links):
    inbox = Inbox()
    links.master(mqtt_url, layout, inbox)
    agv = vehicle_id(7)
    process = subprocess.Popen(
        [sys.executable, "-c", VEHICLE_SCRIPT, mqtt_url, layout.interface_name, agv.manufacturer, agv.serial_number],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        wait_until(lambda: inbox.connection_states(agv) == [m.ConnectionState.ONLINE], what="ONLINE")
        process.kill()  # SIGKILL: no DISCONNECT packet, the socket just dies
        process.wait(10)
        wait_until(lambda: len(inbox.connection_states(agv)) == 2, timeout=15, what="Last Will")
        assert inbox.connection_states(agv) == [m.ConnectionState.ONLINE, m.ConnectionState.CONNECTIONBROKEN]
        will = inbox.of(Topic.CONNECTION, agv)[-1].message
        assert (will.manufacturer, will.serial_number, will.version) == (agv.manufacturer, agv.serial_number, "2.1.0")
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()


def test_graceful_close_says_offline_and_leaves_no_will(mqtt_url, layout, links):
    inbox = Inbox()
    links.master(mqtt_url, layout, inbox)
    vehicle = links.vehicle(mqtt_url, layout, Inbox(), n=2, version="2.0.0")
    agv = vehicle_id(2)
    wait_until(lambda: inbox.connection_states(agv) == [m.ConnectionState.ONLINE])
    vehicle.close()
    wait_until(lambda: len(inbox.connection_states(agv)) == 2)
    assert inbox.connection_states(agv)[-1] is m.ConnectionState.OFFLINE
    assert inbox.of(Topic.CONNECTION, agv)[-1].message.version == "2.0.0"
    late = Spy(mqtt_url, layout.subscription(Topic.CONNECTION, agv))
    wait_until(lambda: late.messages, what="retained connection")
    assert orjson.loads(late.messages[0].payload)["connectionState"] == "OFFLINE"
    late.close()


def test_reconnect_and_resubscribe_after_the_broker_restarts(restartable_broker, layout, links):
    url = restartable_broker.url
    master_inbox, vehicle_inbox = Inbox(), Inbox()
    master = links.master(url, layout, master_inbox)
    vehicle = links.vehicle(url, layout, vehicle_inbox)
    agv = vehicle_id()
    wait_until(lambda: master_inbox.connection_states(agv) == [m.ConnectionState.ONLINE])
    vehicle.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: len(master_inbox.of(Topic.STATE)) == 1)

    restartable_broker.restart()
    wait_until(lambda: master.connected and vehicle.connected, timeout=20, what="reconnection")
    # The vehicle announced itself again and the master, resubscribed, hears it. (Mosquitto
    # sends the wills of its clients when it shuts down: CONNECTIONBROKEN comes in between.)
    online = m.ConnectionState.ONLINE
    wait_until(lambda: master_inbox.connection_states(agv).count(online) == 2, timeout=10, what="ONLINE again")
    assert master_inbox.connection_states(agv)[-1] is online
    assert vehicle.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: len(master_inbox.of(Topic.STATE)) == 2, what="state after restart")
    assert [r.message.header_id for r in master_inbox.of(Topic.STATE)] == [0, 1]
    # ... and the vehicle resubscribed too.
    assert master.publish(order_full(), Topic.ORDER)
    wait_until(lambda: len(vehicle_inbox.of(Topic.ORDER)) == 1, what="order after restart")


def test_every_kind_of_bad_input_is_counted_under_its_reason(mqtt_url, layout, links):
    inbox = Inbox()
    known = {vehicle_id(1), vehicle_id(2)}
    master = links.master(mqtt_url, layout, inbox, accept=lambda v: v in known)
    raw = Raw(mqtt_url)
    agv = vehicle_id(1)
    state_topic = layout.topic(agv, Topic.STATE)

    def state(header_id: int, **changes) -> bytes:
        return encode(state_minimal(**(header(header_id) | changes)))

    raw.send(state_topic, state(5))
    raw.send(state_topic, b"{not json")
    raw.send(state_topic, b'{"headerId": 6}')
    raw.send(state_topic, state(7, serial_number=serial(2)))  # header names AGV-002
    raw.send(layout.topic(vehicle_id(9), Topic.STATE), state(8, serial_number=serial(9)))  # not accepted
    raw.send(state_topic, state(5))  # duplicate
    raw.send(state_topic, state(3))  # stale
    raw.send(state_topic, state(6))
    wait_until(lambda: sum(master.dropped.values()) == 6 and len(inbox.items) == 2, what="all processed")
    raw.close()
    assert master.dropped == {Drop.BAD_JSON: 1, Drop.SCHEMA: 1, Drop.WRONG_VEHICLE: 1,
                              Drop.UNKNOWN_VEHICLE: 1, Drop.STALE: 2}
    assert [r.message.header_id for r in inbox.items] == [5, 6]
    assert "timestamp: Field required" in master.last_drop[Drop.SCHEMA]
    assert "AGV-009" in master.last_drop[Drop.UNKNOWN_VEHICLE]


def test_a_restarted_vehicle_may_count_header_ids_from_zero_again(mqtt_url, layout, links):
    inbox = Inbox()
    master = links.master(mqtt_url, layout, inbox)
    first = links.vehicle(mqtt_url, layout, Inbox())
    for _ in range(3):
        first.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: len(inbox.of(Topic.STATE)) == 3)
    first.close()
    second = links.vehicle(mqtt_url, layout, Inbox())  # same vehicle, fresh counters
    second.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: len(inbox.of(Topic.STATE)) == 4, what="state of the restarted vehicle")
    assert [r.message.header_id for r in inbox.of(Topic.STATE)] == [0, 1, 2, 0]
    assert master.dropped == {}


def test_a_handler_that_raises_does_not_stop_the_link(mqtt_url, layout, links):
    seen: list[int] = []

    def fragile(received: Received) -> None:
        if received.topic is Topic.STATE:
            seen.append(received.message.header_id)
            if received.message.header_id == 0:
                raise RuntimeError("bug in the master")

    master = links.master(mqtt_url, layout, fragile)
    vehicle = links.vehicle(mqtt_url, layout, Inbox())
    vehicle.publish(state_minimal(), Topic.STATE)
    vehicle.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: seen == [0, 1])
    assert master.dropped == {Drop.HANDLER_ERROR: 1}
    assert master.connected


# --- fuzz: thousands of malformed payloads on every topic, the good vehicle still served -------

def malformed_payloads(rng: random.Random, good: dict[Topic, bytes]) -> list[tuple[Topic, bytes, Drop]]:
    """Payloads that are wrong by construction, each with the reason it must be dropped for."""
    cases: list[tuple[Topic, bytes, Drop]] = []
    for _ in range(3000):
        topic = rng.choice(list(Topic))
        valid = orjson.loads(good[topic])
        kind = rng.randrange(6)
        if kind == 0:  # random bytes that cannot start a JSON document
            payload = bytes([rng.choice(b"\x00\xff}]:,x")]) + rng.randbytes(rng.randrange(0, 200))
            cases.append((topic, payload, Drop.BAD_JSON))
        elif kind == 1:  # a valid message cut short
            text = good[topic]
            cases.append((topic, text[: rng.randrange(1, len(text) - 1)], Drop.BAD_JSON))
        elif kind == 2:  # JSON that is not an object
            payload = orjson.dumps(rng.choice([[], 1, "state", True, None, [valid]]))
            cases.append((topic, payload, Drop.SCHEMA))
        elif kind == 3:  # a required field removed (visualization has none: break one)
            if topic is Topic.VISUALIZATION:
                valid["velocity"] = rng.choice([1, "fast", [], True])
            else:
                del valid[rng.choice(["version", "manufacturer", "serialNumber"])]
            cases.append((topic, orjson.dumps(valid), Drop.SCHEMA))
        elif kind == 4:  # a field of a type no field has: object for a scalar or list, number for an object
            key = rng.choice([k for k in valid if k not in ("manufacturer", "serialNumber")])
            valid[key] = 3 if isinstance(valid[key], dict) else rng.choice([{"a": [1]}, [None]])
            cases.append((topic, orjson.dumps(valid), Drop.SCHEMA))
        else:  # another vehicle's name in the header
            valid["serialNumber"] = "IMPOSTOR"
            valid["manufacturer"] = MANUFACTURER
            cases.append((topic, orjson.dumps(valid), Drop.WRONG_VEHICLE))
    return cases


def test_fuzz_thousands_of_malformed_payloads_while_a_good_vehicle_is_served(mqtt_url, layout, links):
    master_inbox, vehicle_inbox = Inbox(), Inbox()
    master = links.master(mqtt_url, layout, master_inbox)
    vehicle = links.vehicle(mqtt_url, layout, vehicle_inbox)
    agv = vehicle_id()
    wait_until(lambda: master_inbox.connection_states(agv) == [m.ConnectionState.ONLINE])
    good = {
        Topic.STATE: encode(state_full()), Topic.VISUALIZATION: encode(visualization_full()),
        Topic.FACTSHEET: encode(factsheet_full()), Topic.ORDER: encode(order_full()),
        Topic.INSTANT_ACTIONS: encode(instant_actions_full()),
        Topic.CONNECTION: encode(m.Connection(**header(), connection_state=m.ConnectionState.ONLINE)),
    }
    rng_good = random.Random(5)
    cases = malformed_payloads(random.Random(4), good)
    expected_master: Counter[Drop] = Counter()
    expected_vehicle: Counter[Drop] = Counter()
    raw = Raw(mqtt_url)
    good_states = 0
    # In chunks, waiting for each to be handled: the broker drops QoS 0 messages to a client
    # that falls more than max_queued_messages (1000) behind, which a loaded machine could do.
    for start in range(0, len(cases), 250):
        for topic, payload, reason in cases[start:start + 250]:
            (expected_master if topic in FROM_VEHICLE else expected_vehicle)[reason] += 1
            raw.client.publish(layout.topic(agv, topic), payload, qos=0)
            if rng_good.random() < 0.1:
                vehicle.publish(state_minimal(), Topic.STATE)
                master.publish(order_full(), Topic.ORDER)
                good_states += 1
        wait_until(lambda: master.dropped == expected_master and vehicle.dropped == expected_vehicle
                   and len(master_inbox.of(Topic.STATE)) == good_states
                   and len(vehicle_inbox.of(Topic.ORDER)) == good_states, timeout=30,
                   what=f"chunk at {start} handled")
    raw.close()
    assert good_states > 200
    assert dict(master.dropped) == expected_master
    assert dict(vehicle.dropped) == expected_vehicle
    assert [r.message.header_id for r in master_inbox.of(Topic.STATE)] == list(range(good_states))
    assert len(vehicle_inbox.of(Topic.ORDER)) == good_states
    assert master.connected and vehicle.connected


# --- security options and the fixture's own failure mode ----------------------------------------

def test_tls_with_username_and_password(secure_broker, layout, links):
    parts = secure_broker.url.split("://")
    url = f"{parts[0]}://fleet:s3cret@{parts[1]}"
    tls = {"ca_certs": str(secure_broker.tls.ca)}
    inbox = Inbox()
    master = MqttLink(BrokerConfig.from_url(url, **tls), subscriptions=sorted(FROM_VEHICLE),
                      on_message=inbox, layout=layout)
    vehicle = MqttLink(BrokerConfig.from_url(url, **tls), subscriptions=sorted(FROM_MASTER),
                       on_message=Inbox(), layout=layout, vehicle=vehicle_id())
    links._start(master)
    links._start(vehicle)
    assert vehicle.publish(state_minimal(), Topic.STATE)
    wait_until(lambda: len(inbox.of(Topic.STATE)) == 1, what="state over TLS")


@pytest.mark.parametrize("credentials", ["fleet:wrong@", ""])
def test_wrong_or_missing_password_is_refused(secure_broker, layout, credentials):
    scheme, rest = secure_broker.url.split("://")
    config = BrokerConfig.from_url(f"{scheme}://{credentials}{rest}", ca_certs=str(secure_broker.tls.ca))
    link = MqttLink(config, subscriptions=[Topic.STATE], on_message=Inbox(), layout=layout)
    try:
        assert link.start(timeout=1) is False
        wait_until(lambda: link.refusal is not None, what="the broker's refusal")
        assert link.refusal in ("Not authorized", "Bad user name or password")
    finally:
        link.close()


def test_tls_refuses_a_broker_it_cannot_verify(secure_broker, layout):
    scheme, rest = secure_broker.url.split("://")
    link = MqttLink(f"{scheme}://fleet:s3cret@{rest}", subscriptions=[Topic.STATE], on_message=Inbox(),
                    layout=layout)  # system CAs only: the test CA is unknown
    try:
        assert link.start(timeout=1) is False
        wait_until(lambda: link.connect_failures >= 1, what="a failed TLS handshake")
        assert link.refusal is None  # never got as far as MQTT
    finally:
        link.close()


def test_missing_mosquitto_fails_with_a_clear_message(monkeypatch):
    import conftest

    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(conftest, "MOSQUITTO_CANDIDATES", ())
    with pytest.raises(pytest.fail.Exception, match="mosquitto is not installed.*setup-test-deps"):
        conftest.mosquitto_binary()


def test_the_broker_recorder_flags_what_is_not_valid_vda5050(mqtt_url, layout, record_broker, vda5050_schemas):
    """The recorder later judges whole multi-robot runs: it must be able to say no."""
    recorder = record_broker(mqtt_url, f"{layout.base}/#")
    raw = Raw(mqtt_url)
    agv = vehicle_id()
    raw.send(layout.topic(agv, Topic.STATE), encode(state_minimal()))
    raw.send(layout.topic(agv, Topic.STATE), encode(state_minimal()).replace(b'"driving":false', b'"driving":0'))
    raw.send(layout.topic(agv, Topic.CONNECTION), b'{"connectionState": "ONLINE", "zoneSetld": 1}')
    raw.send(layout.topic(agv, Topic.STATE), encode(state_minimal()).replace(b'"driving":false',
                                                                              b'"driving":false,"pasued":true'))
    raw.send(f"{layout.base}/{agv.manufacturer}/{agv.serial_number}/weather", b"{}")
    wait_until(lambda: len(recorder.snapshot()) == 5, what="recorded")
    raw.close()
    problems = recorder.problems(vda5050_schemas)
    assert any("0 is not of type 'boolean'" in p for p in problems)
    assert any("'headerId' is a required property" in p for p in problems)
    assert any("unknown field /zoneSetld" in p for p in problems)
    assert any("unknown field /pasued" in p for p in problems)
    assert any("no schema for topic 'weather'" in p for p in problems)
