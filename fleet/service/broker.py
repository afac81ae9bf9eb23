"""A private MQTT broker on loopback, for `fleet demo` and the tests: Mosquitto when it is
installed, else amqtt inside this process.

Why two: Mosquitto is what a warehouse runs and what the tests' brokers are, so it comes
first; but `fleet demo` must run on a machine that has nothing but Python, and amqtt (pure
Python, one of the project's dependencies) is always there. Either listens on 127.0.0.1
only, on a free port, takes anonymous clients and keeps nothing on disk: a throwaway
broker for one run, never one to put in front of a real fleet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Protocol

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
#: What `embedded_broker` may start; "auto" is Mosquitto if installed, else amqtt.
Embedded = Literal["auto", "mosquitto", "amqtt"]
EMBEDDED: tuple[Embedded, ...] = ("auto", "mosquitto", "amqtt")


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why (and how to fix it)."""


def find_mosquitto(candidates: tuple[str, ...] = MOSQUITTO_CANDIDATES) -> str | None:
    """The mosquitto binary: on PATH, else in sbin (Debian installs it there, often off a
    user's PATH)."""
    return shutil.which("mosquitto") or next((path for path in candidates if os.access(path, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class LoopbackBroker(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self, timeout: float = 10.0) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA that signed the broker's certificate
    cert: Path
    key: Path


class MosquittoBroker:
    """One private Mosquitto process on 127.0.0.1 that may be stopped and restarted.

    The port stays the same across restarts, so clients can reconnect to the same URL.
    Persistence is off: a restart loses retained messages and sessions, as a real broker
    restart without a persistence file would. With `tls` it speaks only TLS; with
    `credentials` it refuses anonymous clients. Its configuration and log live in
    `workdir`.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        binary: str | None = None,
        tls: TlsFiles | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.binary = binary
        self.tls = tls
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            # Started as root, mosquitto would switch to the 'mosquitto' user, which cannot
            # read a private temporary folder.
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
        binary = self.binary or find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        with self.log.open("ab") as log:
            # its own session: a Ctrl-C at the terminal reaches the whole foreground process
            # group, and a broker gone first left the demo's robots retrying all through
            # the shutdown; the owner stops it last
            self._process = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=log,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._process.returncode} on port {self.port}: "
                    f"{self.log.read_text(errors='replace').strip()[-2000:]}"
                )
            if _listening(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout} s")

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


class _Snapshots(dict):
    """amqtt 0.12.1 walks its subscription table across awaits (retained messages for a
    client that connects, each broadcast) while other clients' tasks subscribe: with a
    fleet's clients connecting at once that raised "dictionary changed size during
    iteration" and dropped a client. Walking a copy is what the loops meant."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, list]]:  # type: ignore[override]
        return list(super().items())


class AmqttBroker:
    """amqtt's broker on 127.0.0.1, on an asyncio loop in a thread of this process.

    Its own thread and loop, because everything else here (paho's clients, uvicorn's
    server) runs its own threads: the broker must not share a loop it could be blocked by.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        from amqtt.broker import Broker

        # amqtt logs every connection at INFO and a client that hangs up at WARNING
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        loop = asyncio.new_event_loop()
        started: Future[None] = Future()

        async def serve() -> None:
            try:
                self._broker = Broker({
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                })
                self._broker._subscriptions = _Snapshots()
                await self._broker.start()
            except Exception as exc:  # a port taken meanwhile, say
                started.set_exception(exc)
                return
            started.set_result(None)

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.create_task(serve())
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except Exception as exc:
            self.stop()
            why = f"it did not start within {timeout} s" if isinstance(exc, TimeoutError) else str(exc)
            raise BrokerError(f"amqtt broker on 127.0.0.1:{self.port}: {why}") from None

    def stop(self) -> None:
        """Shut the broker down (clients see their connection closed) and end its thread."""
        if self._loop is None:
            return
        loop, thread, broker = self._loop, self._thread, self._broker
        self._loop = self._thread = self._broker = None
        if broker is not None and thread is not None and thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
            except Exception as exc:  # already half down: the thread still has to end
                logging.getLogger(__name__).warning("amqtt broker shutdown: %s", exc)
        if thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def embedded_broker(workdir: Path, kind: Embedded = "auto") -> LoopbackBroker:
    """A broker for one run, not started; "auto": Mosquitto if installed, else amqtt."""
    if kind not in EMBEDDED:
        raise ValueError(f"embedded broker must be one of {', '.join(EMBEDDED)}, got {kind!r}")
    if kind == "amqtt" or (kind == "auto" and find_mosquitto() is None):
        return AmqttBroker()
    return MosquittoBroker(workdir)
