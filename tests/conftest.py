"""Shared fixtures: a private Mosquitto broker and the official VDA 5050 schemas.

Tests that touch MQTT talk to a real broker, never a mock: one private instance per test
session on a free loopback port (`mqtt_url`), and a separate one per test for tests that
stop and restart the broker (`restartable_broker`), so that restarting it never disturbs
other tests. The schemas are read from the shared folder's vda5050/schemas (see
tests/shared_data.py) or from $VDA5050_SCHEMAS, never from a copy in this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

# MOSQUITTO_CANDIDATES is read from this module, so a test can empty it (test_vda5050_mqtt.py)
from fleet.service.broker import MOSQUITTO_CANDIDATES, MosquittoBroker, TlsFiles, find_mosquitto
from shared_data import SHARED

SCHEMA_TOPICS = ("order", "instantActions", "state", "visualization", "connection", "factsheet")


def mosquitto_binary() -> str:
    found = find_mosquitto(MOSQUITTO_CANDIDATES)
    if found is None:
        pytest.fail(
            "mosquitto is not installed: the MQTT tests need a real broker. "
            "Run `bash .ci/setup-test-deps` (or `apt-get install mosquitto`).",
            pytrace=False,
        )
    return found


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA and a broker certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS broker test needs the openssl command-line tool", pytrace=False)
    files = TlsFiles(folder / "ca.pem", folder / "broker.pem", folder / "broker.key")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fleet test CA",
         "-keyout", str(folder / "ca.key"), "-out", str(files.ca)],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(files.key), "-out", str(folder / "broker.csr")],
        ["x509", "-req", "-in", str(folder / "broker.csr"), "-CA", str(files.ca), "-CAkey",
         str(folder / "ca.key"), "-CAcreateserial", "-days", "2", "-out", str(files.cert),
         "-extfile", str(folder / "san.cnf")],
    ]
    for step in steps:
        subprocess.run([openssl, *step], check=True, capture_output=True)
    return files


def private_broker(workdir: Path, **options: Any) -> MosquittoBroker:
    """A private Mosquitto (fleet/service/broker.py, shared with `fleet demo`); a missing
    mosquitto fails the test with how to install it."""
    return MosquittoBroker(workdir, binary=mosquitto_binary(), **options)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """The session's shared broker. Do not stop it; use `restartable_broker` for that."""
    broker = private_broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mqtt_url(mqtt_broker: MosquittoBroker) -> str:
    """mqtt://127.0.0.1:PORT of the session's private broker."""
    return mqtt_broker.url


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker of this test's own, to stop, restart or kill mid-test."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = private_broker(workdir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secure_broker(tmp_path: Path, tls_files: TlsFiles) -> Iterator[MosquittoBroker]:
    """A broker of this test's own that speaks only TLS and wants user 'fleet', password 's3cret'."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = private_broker(workdir, tls=tls_files, credentials=("fleet", "s3cret"))
    broker.start()
    yield broker
    broker.stop()


def schema_dir() -> Path:
    override = os.environ.get("VDA5050_SCHEMAS")
    path = Path(override) if override else SHARED / "vda5050" / "schemas"
    if not path.is_dir():
        pytest.fail(
            f"VDA 5050 schemas not found at {path}: set VDA5050_SCHEMAS to the folder "
            "holding the official *.schema files",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def vda5050_schemas() -> dict[str, Draft202012Validator]:
    """Official JSON schema validators by topic name, with date-time format checking."""
    folder = schema_dir()
    validators = {}
    for topic in SCHEMA_TOPICS:
        schema = json.loads((folder / f"{topic}.schema").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        validators[topic] = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    return validators


def unknown_keys(schema: dict, document: Any, root: dict, where: str = "") -> list[str]:
    """Keys of `document` that its schema does not name: the schemas allow extra fields,
    so a misspelt optional field would pass validation unnoticed without this check."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    found = []
    if isinstance(document, dict) and "properties" in schema:
        for key, value in document.items():
            if key not in schema["properties"]:
                found.append(f"{where}/{key}")
            elif not (key == "value" or (key == "data" and "format" in document)):
                found += unknown_keys(schema["properties"][key], value, root, f"{where}/{key}")
    elif isinstance(document, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(document):
            found += unknown_keys(schema["items"], item, root, f"{where}/{index}")
    return found


@dataclass(frozen=True)
class Recorded:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Recorder:
    """Every message published under a topic filter, as the broker delivered it (QoS 1
    subscription, so the recorded QoS is the publisher's)."""

    def __init__(self, url: str, topic_filter: str = "#") -> None:
        parts = urlsplit(url)
        self.messages: list[Recorded] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self._client.on_message = self._record
        self._client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self._client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError(f"recorder could not subscribe to {topic_filter!r} on {url}")

    def _record(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Recorded(message.topic, bytes(message.payload), message.qos, bool(message.retain)))

    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.messages)

    def problems(self, schemas: dict[str, Draft202012Validator]) -> list[str]:
        """Each recorded message that is not valid against the official schema of its
        topic (the last topic level), or that carries a field the schema does not name."""
        found = []
        for record in self.snapshot():
            topic = record.topic.rsplit("/", 1)[-1]
            validator = schemas.get(topic)
            if validator is None:
                found.append(f"{record.topic}: no schema for topic {topic!r}")
                continue
            try:
                document = json.loads(record.payload)
            except ValueError as exc:
                found.append(f"{record.topic}: not JSON: {exc}")
                continue
            found += [f"{record.topic}: {e.message}" for e in validator.iter_errors(document)]
            found += [f"{record.topic}: unknown field {key}"
                      for key in unknown_keys(validator.schema, document, validator.schema)]
        return found

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def record_broker() -> Iterator[Any]:
    """record_broker(url, filter="#") -> Recorder; every recorder is closed after the test."""
    made: list[Recorder] = []

    def start(url: str, topic_filter: str = "#") -> Recorder:
        made.append(Recorder(url, topic_filter))
        return made[-1]

    yield start
    for recorder in made:
        recorder.close()


@pytest.fixture(scope="module")
def client(service):
    """An HTTP client of the test module's own `service` fixture (a running Service)."""
    from fastapi.testclient import TestClient

    with TestClient(service.app) as c:
        yield c
