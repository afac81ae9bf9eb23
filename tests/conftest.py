"""Shared fixtures: a private Mosquitto broker and the official VDA 5050 schemas.

Tests that touch MQTT talk to a real broker, never a mock: one private instance per test
session on a free loopback port (`mqtt_url`), and a separate one per test for tests that
stop and restart the broker (`restartable_broker`), so that restarting it never disturbs
other tests. The schemas are read from ../shared/vda5050/schemas (next to the repository)
or from $VDA5050_SCHEMAS, never from a copy in this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

REPO_ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
SCHEMA_TOPICS = ("order", "instantActions", "state", "visualization", "connection", "factsheet")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (path for path in MOSQUITTO_CANDIDATES if os.access(path, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed: the MQTT tests need a real broker. "
            "Run `bash .ci/setup-test-deps` (or `apt-get install mosquitto`).",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the test CA that signed the broker's certificate
    cert: Path
    key: Path


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


class Broker:
    """One private Mosquitto process on 127.0.0.1 that a test may stop and restart.

    The port stays the same across restarts, so clients can reconnect to the same URL.
    Persistence is off: a restart loses retained messages and sessions, as a real broker
    restart without a persistence file would. With `tls` it speaks only TLS; with
    `credentials` it refuses anonymous clients.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        tls: TlsFiles | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            # Started as root, mosquitto would switch to the 'mosquitto' user, which cannot
            # read the test's private temporary folder.
            "user root" if os.geteuid() == 0 else "",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if credentials else 'true'}",
            "persistence false",
            "log_dest stderr",  # into self.log through our own file handle (see start)
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if credentials is not None:
            password_file = workdir / "passwords"
            subprocess.run(
                [shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c",
                 str(password_file), *credentials],
                check=True, capture_output=True,
            )
            lines.append(f"password_file {password_file}")
        self.config.write_text("\n".join(line for line in lines if line) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with code {self._process.returncode} on port {self.port}: "
                    f"{self.log.read_text(errors='replace').strip()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def stop(self) -> None:
        """Terminate the broker (SIGTERM: it closes client sockets, no wills are sent)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The session's shared broker. Do not stop it; use `restartable_broker` for that."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mqtt_url(mqtt_broker: Broker) -> str:
    """mqtt://127.0.0.1:PORT of the session's private broker."""
    return mqtt_broker.url


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, to stop, restart or kill mid-test."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Broker(workdir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secure_broker(tmp_path: Path, tls_files: TlsFiles) -> Iterator[Broker]:
    """A broker of this test's own that speaks only TLS and wants user 'fleet', password 's3cret'."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Broker(workdir, tls=tls_files, credentials=("fleet", "s3cret"))
    broker.start()
    yield broker
    broker.stop()


def schema_dir() -> Path:
    override = os.environ.get("VDA5050_SCHEMAS")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "vda5050" / "schemas"
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
