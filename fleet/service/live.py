"""The console's live feed over WebSocket: only what changed, at most every interval.

A browser watching 1,000 robots must not get 1,000 robots times their report rate: each
client is sent, every `interval` seconds at most, the robots whose row changed since what
that client was last sent, the shelves that moved, the blocked cells and active alarms
when they change, and the reserved cells only of the robot it selected ("watch").

Messages (JSON): {"t": clock s, "robots": {id: [x, y, heading, state, charge, shelf,
errand]}, "shelves": {id: [x, y] | robot id}, "held": {id: [[x, y], ...]}, "blocked":
[[x, y], ...], "errors": {robot id: {error code: severity}} (every robot with errors: they
are few), "alarms": [...], "flags": {"emergency_stop": b, "paused_all": b}}; every key but
"t" only when it changed. The client asks for reserved cells with {"watch": robot id |
"all" | null}.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from fleet.service.runtime import Runtime
from fleet.service.store import Store


def changed(before: dict, now: dict) -> dict:
    """Entries of `now` that are new or differ from `before` (rows are tuples: cheap ==)."""
    return {k: v for k, v in now.items() if before.get(k) != v}


class LiveFeed:
    def __init__(self, runtime: Runtime, store: Store, interval: float) -> None:
        self.runtime = runtime
        self.store = store
        self.interval = interval
        self._alarms: list[dict] = []
        self._alarms_at = -1.0

    def alarms_changed(self) -> None:
        self._alarms_at = -1.0

    def _active_alarms(self) -> list[dict]:
        """Shared by every client, refreshed at most once per interval."""
        now = time.monotonic()
        if now - self._alarms_at >= self.interval:
            self._alarms = [asdict(a) for a in self.store.alarms(active_only=True)]
            self._alarms_at = now
        return self._alarms

    async def serve(self, socket: WebSocket) -> None:
        watch: list[str | None] = [None]
        listener = asyncio.create_task(self._listen(socket, watch))
        sent_robots: dict = {}
        sent_shelves: dict = {}
        sent_held: dict = {}
        sent_blocked = sent_errors = sent_alarms = sent_flags = None
        watched = None
        try:
            while not listener.done():
                snap = self.runtime.snapshot()
                msg: dict = {"t": snap.time}
                if robots := changed(sent_robots, snap.robots):
                    msg["robots"] = robots
                    sent_robots = snap.robots
                if shelves := changed(sent_shelves, snap.shelves):
                    msg["shelves"] = shelves
                    sent_shelves = snap.shelves
                wanted = snap.held if watch[0] == "all" else \
                    {watch[0]: snap.held[watch[0]]} if watch[0] in snap.held else {}
                if watch[0] != watched:
                    sent_held, watched = {}, watch[0]
                    msg["held_reset"] = True
                if held := changed(sent_held, wanted):
                    msg["held"] = held
                    sent_held = wanted
                if snap.blocked != sent_blocked:
                    msg["blocked"] = sorted(snap.blocked)
                    sent_blocked = snap.blocked
                if snap.errors != sent_errors:
                    msg["errors"] = sent_errors = snap.errors
                alarms = await asyncio.to_thread(self._active_alarms)
                if alarms != sent_alarms:
                    msg["alarms"] = alarms
                    sent_alarms = alarms
                flags = {"emergency_stop": snap.emergency_stop, "paused_all": snap.paused_all}
                if flags != sent_flags:
                    msg["flags"] = sent_flags = flags
                if len(msg) > 1:
                    await socket.send_text(orjson.dumps(msg).decode())
                await asyncio.wait({listener}, timeout=self.interval)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the browser went away
        finally:
            listener.cancel()

    @staticmethod
    async def _listen(socket: WebSocket, watch: list[str | None]) -> None:
        """Client messages: {"watch": robot id | "all" | null}; anything else is ignored."""
        while True:
            try:
                message = orjson.loads(await socket.receive_text())
            except orjson.JSONDecodeError:
                continue
            except (WebSocketDisconnect, RuntimeError):
                return
            if isinstance(message, dict) and "watch" in message:
                value = message["watch"]
                watch[0] = value if isinstance(value, str) or value is None else None
