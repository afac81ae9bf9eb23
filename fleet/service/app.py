"""One service: store, runtime, auth and the HTTP app, started and stopped together.

`fleet serve` runs it in the foreground, `fleet demo` in a background thread; tests run it in a
background thread on a free port (`start`/`stop`) and talk to it like a browser does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

import uvicorn

from fleet.clock import WallClock
from fleet.service.api import create_app
from fleet.service.auth import Auth, hash_password
from fleet.service.config import Settings, User
from fleet.service.store import Store
from fleet.service.wiring import build_runtime

log = logging.getLogger(__name__)

#: `fleet demo` logins: user name = password (a demo on loopback, nothing more).
DEMO_USERS = ("admin", "operator", "viewer")


def demo_users() -> list[User]:
    return [User(name=n, role=n, password_hash=hash_password(n)) for n in DEMO_USERS]


class Service:
    def __init__(self, settings: Settings, wmap=None, wall_clock: WallClock | None = None) -> None:
        """`wall_clock`: see build_runtime (`fleet demo` runs its VDA 5050 vehicles sped up)."""
        self.settings = settings
        self.store = Store.open(settings.database.url)
        self.runtime = build_runtime(settings, self.store, wmap, wall_clock)
        self.auth = Auth(settings.users, settings.console.session_s)
        self.app = create_app(self.runtime, self.store, self.auth, settings.console.update_interval_s)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        #: Port 0 means any free one, chosen now so the URL can be printed before serving.
        self.port = settings.console.port or _free_port(settings.console.host)

    @property
    def url(self) -> str:
        return f"http://{self.settings.console.host}:{self.port}/"

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """In the foreground until interrupted (uvicorn handles SIGINT and SIGTERM here).
        `ready` is called once the port accepts connections: a URL printed before that
        sends the first client, a person or a script, into a refused connection."""
        self.runtime.start()
        server = self._make_server()
        if ready is not None:
            threading.Thread(target=_when_started, args=(server, ready), name="fleet-ready", daemon=True).start()
        try:
            server.run()
        finally:
            self.close()

    def start(self) -> None:
        """In a background thread; returns once the port accepts connections."""
        self.runtime.start()
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.run, name="fleet-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        self.runtime.stop()
        self.store.close()

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, host=self.settings.console.host, port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="off")
        return uvicorn.Server(config)


def _when_started(server: uvicorn.Server, ready: Callable[[], None]) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    ready()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
