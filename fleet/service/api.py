"""The HTTP API and the console's live feed (FastAPI; OpenAPI at /docs).

Reads come from the runtime's latest snapshot and the store, so they never wait for the
control loop. Every mutating request checks the caller's role, validates its input against
the map and the fleet (a specific 4xx, nothing changed), writes the audit entry, and only
then queues the command on the runtime.
"""


import asyncio
import concurrent.futures
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from fleet.scheduler.workflows import check_storage_cell
from fleet.service.auth import Auth, Principal
from fleet.service.live import LiveFeed
from fleet.service.runtime import NotFound, OperatorError, Runtime
from fleet.service.store import Store
from fleet.service.warehouse_api import TerminalOut, add_warehouse_routes, terminal_out
from maps.model import Cell, CellKind

log = logging.getLogger(__name__)
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
RobotId = Annotated[str, PathParam(min_length=1, max_length=64)]
ShelfId = Annotated[str, PathParam(min_length=1, max_length=64)]
Coordinate = Annotated[int, PathParam(ge=-(2**31), le=2**31 - 1)]


# --- request and response bodies --------------------------------------------------------------
class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Session(BaseModel):
    token: str
    name: str
    role: str


class Me(BaseModel):
    name: str
    role: str


class Done(BaseModel):
    ok: bool = True
    audit_id: int
    detail: dict = {}


class Position(BaseModel):
    x: int
    y: int


class RobotOut(BaseModel):
    id: str
    cell: Position
    heading: int = Field(description="0 east, 1 north, 2 west, 3 south")
    state: str
    charge: int = Field(description="percent")
    shelf: str | None
    errand: str | None
    errors: dict[str, str]
    held: list[Position]


class ShelfOut(BaseModel):
    id: str
    cell: Position | None
    robot: str | None
    home: Position | None


class StationOut(BaseModel):
    id: str
    kind: str
    working: list[Position] = Field(description="one working cell, or two where the next shelf swaps in while the operator works")
    queues: list[list[Position]] = Field(description="the queue leading to each working cell, from its entry to the front")
    operator_side: int
    robots: list[str] = Field(description="robots on the working cell and in the queue, front first")
    terminal: TerminalOut | None = Field(default=None, description="the scheduler's queue and what the terminal "
                                                                   "shows (in /api/stations, not in /api/map)")


class MapOut(BaseModel):
    name: str
    width: int
    height: int
    layout: list[str] = Field(description="one string per row, one symbol per cell (docs/map-format.md)")
    stations: list[StationOut]
    chargers: list[Position]


class AlarmOut(BaseModel):
    id: int
    raised: float
    kind: str
    severity: str
    robot: str | None
    message: str
    acknowledged_by: str | None
    acknowledged_at: float | None
    cleared_at: float | None


class AuditOut(BaseModel):
    id: int
    at: float
    user: str
    role: str
    action: str
    target: str
    detail: dict


class Health(BaseModel):
    status: Literal["ok", "failing"]
    loop_running: bool
    loop_error: str | None
    time: float
    cycle: int
    robots: int
    database: bool
    schema_version: int


class Error(BaseModel):
    detail: str


ERRORS = {400: {"model": Error}, 401: {"model": Error}, 403: {"model": Error}, 404: {"model": Error},
          409: {"model": Error}, 413: {"model": Error}, 415: {"model": Error}, 503: {"model": Error}}


def create_app(runtime: Runtime, store: Store, auth: Auth, update_interval_s: float = 0.25) -> FastAPI:
    app = FastAPI(title="AGV fleet control room", version="1", description="Operators watch and steer the fleet.")
    wmap = runtime.wmap
    feed = LiveFeed(runtime, store, update_interval_s)

    @app.middleware("http")
    async def _timing(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        runtime.metrics.requests.labels(getattr(route, "path", "other")).observe(time.perf_counter() - started)
        return response

    # --- who is calling -------------------------------------------------------------------
    def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "log in first: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        who = auth.identify(token.strip())
        if who is None:
            raise HTTPException(401, "the token is unknown or the session expired", headers={"WWW-Authenticate": "Bearer"})
        return who

    def role(needed: str):
        def check(who: Principal = Depends(principal)) -> Principal:
            if not who.may(needed):
                raise HTTPException(403, f"{who.name} is a {who.role}; this needs the {needed} role")
            return who
        return check

    Viewer = Annotated[Principal, Depends(role("viewer"))]
    Operator = Annotated[Principal, Depends(role("operator"))]

    def act(who: Principal, action: str, target: str, command, detail: dict | None = None) -> Done:
        """Audit first (durable before acted on), then run on the loop thread."""
        audit_id = store.record(time.time(), who.name, who.role, action, target, detail)
        log.info("operator action", extra={"user": who.name, "role": who.role, "action": action, "target": target,
                                           "audit_id": audit_id})
        try:
            result = runtime.call(command)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except OperatorError as exc:
            raise HTTPException(409, str(exc)) from None
        except concurrent.futures.TimeoutError:
            raise HTTPException(503, "the control loop did not answer in time") from None
        return Done(audit_id=audit_id, detail={"result": result} if result else {})

    def known_robot(robot_id: str) -> str:
        if robot_id not in runtime.snapshot().robots:
            raise HTTPException(404, f"unknown robot {robot_id!r}")
        return robot_id

    def cell(x: int, y: int) -> Cell:
        try:
            return runtime.check_cell(x, y)
        except OperatorError as exc:
            raise HTTPException(400, str(exc)) from None

    # --- session --------------------------------------------------------------------------
    @app.post("/api/login", response_model=Session, responses=ERRORS, tags=["session"])
    async def login(body: Login) -> Session:
        token = await asyncio.to_thread(auth.login, body.username, body.password)
        if token is None:
            raise HTTPException(401, "wrong user name or password")
        who = auth.identify(token)
        return Session(token=token, name=who.name, role=who.role)

    @app.post("/api/logout", response_model=Me, responses=ERRORS, tags=["session"])
    def logout(request: Request, who: Viewer) -> Me:
        auth.logout(request.headers["authorization"].partition(" ")[2].strip())
        return Me(name=who.name, role=who.role)

    @app.get("/api/me", response_model=Me, responses=ERRORS, tags=["session"])
    def me(who: Viewer) -> Me:
        return Me(name=who.name, role=who.role)

    # orders, inbound notes, tasks, inventory, KPIs, station terminals
    terminals = add_warehouse_routes(app, runtime, store, Viewer, Operator, act, ERRORS)
    warehouse = runtime.work

    # --- reading --------------------------------------------------------------------------
    @app.get("/api/health", response_model=Health, tags=["service"])
    def health() -> Health:
        snap = runtime.snapshot()
        try:
            version, database = store.version(), True
        except Exception:  # noqa: BLE001 - any database failure is reported, not raised
            version, database = 0, False
        ok = runtime.running and database
        return Health(status="ok" if ok else "failing", loop_running=runtime.running,
                      loop_error=repr(runtime.error) if runtime.error else None, time=snap.time, cycle=snap.cycle,
                      robots=len(snap.robots), database=database, schema_version=version)

    @app.get("/metrics", tags=["service"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    layout = ["".join(wmap.kind(Cell(x, y)).value for x in range(wmap.width)) for y in range(wmap.height)]
    chargers = [Position(x=c.x, y=c.y) for c in wmap.cells_of(CellKind.CHARGER)]

    @app.get("/api/map", response_model=MapOut, responses=ERRORS, tags=["floor"])
    def get_map(who: Viewer) -> MapOut:
        return MapOut(name=wmap.name, width=wmap.width, height=wmap.height, layout=layout,
                      stations=_stations_out(runtime), chargers=chargers)

    @app.get("/api/robots", response_model=list[RobotOut], responses=ERRORS, tags=["robots"])
    def list_robots(who: Viewer, state: Annotated[str | None, Query(max_length=32)] = None,
                    max_charge: Annotated[int | None, Query(ge=0, le=100)] = None,
                    with_errors: bool = False) -> Response:
        # Serialised straight from the snapshot (1,000 robots through pydantic cost ~50 ms).
        snap = runtime.snapshot()
        out = []
        for robot_id, row in snap.robots.items():
            if state is not None and row[3] != state or max_charge is not None and row[4] > max_charge \
                    or with_errors and robot_id not in snap.errors:
                continue
            out.append(_robot_dict(snap, robot_id))
        return Response(orjson.dumps(out), media_type="application/json")

    @app.get("/api/robots/{robot_id}", response_model=RobotOut, responses=ERRORS, tags=["robots"])
    def get_robot(robot_id: RobotId, who: Viewer) -> RobotOut:
        return _robot_out(runtime.snapshot(), known_robot(robot_id))

    @app.get("/api/shelves", response_model=list[ShelfOut], responses=ERRORS, tags=["floor"])
    def list_shelves(who: Viewer) -> list[ShelfOut]:
        homes = store.shelves()
        return [_shelf_out(s, p, homes.get(s)) for s, p in runtime.snapshot().shelves.items()]

    @app.get("/api/shelves/{shelf_id}", response_model=ShelfOut, responses=ERRORS, tags=["floor"])
    def get_shelf(shelf_id: ShelfId, who: Viewer) -> ShelfOut:
        where = runtime.snapshot().shelves.get(shelf_id)
        if where is None:
            raise HTTPException(404, f"unknown shelf {shelf_id!r}")
        return _shelf_out(shelf_id, where, store.shelves().get(shelf_id))

    @app.get("/api/stations", response_model=list[StationOut], responses=ERRORS, tags=["stations"])
    def list_stations(who: Viewer) -> list[StationOut]:
        views = {v.id: terminal_out(v) for v in terminals.published}
        return [s.model_copy(update={"terminal": views[s.id]}) for s in _stations_out(runtime)]

    @app.get("/api/reservations", response_model=dict[str, list[Position]], responses=ERRORS, tags=["floor"])
    def reservations(who: Viewer, robot: Annotated[str | None, Query(min_length=1, max_length=64)] = None
                     ) -> dict[str, list[Position]]:
        held = runtime.snapshot().held
        if robot is not None:
            held = {known_robot(robot): held[robot]}
        return {r: [Position(x=x, y=y) for x, y in cells] for r, cells in held.items()}

    @app.get("/api/blocked-cells", response_model=list[Position], responses=ERRORS, tags=["floor"])
    def blocked_cells(who: Viewer) -> list[Position]:
        return [Position(x=x, y=y) for x, y in sorted(runtime.snapshot().blocked)]

    @app.get("/api/alarms", response_model=list[AlarmOut], responses=ERRORS, tags=["alarms"])
    def list_alarms(who: Viewer, active: bool = False,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AlarmOut]:
        return [AlarmOut(**asdict(a)) for a in store.alarms(active_only=active, limit=limit)]

    @app.get("/api/audit", response_model=list[AuditOut], responses=ERRORS, tags=["audit"])
    def audit_log(who: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> list[AuditOut]:
        return [AuditOut(**asdict(e)) for e in store.audit_log(limit, before)]

    # --- operator actions -----------------------------------------------------------------
    @app.post("/api/robots/{robot_id}/pause", response_model=Done, responses=ERRORS, tags=["robots"])
    def pause_robot(robot_id: RobotId, who: Operator) -> Done:
        known_robot(robot_id)
        return act(who, "pause", robot_id, lambda: runtime.pause(robot_id))

    @app.post("/api/robots/{robot_id}/resume", response_model=Done, responses=ERRORS, tags=["robots"])
    def resume_robot(robot_id: RobotId, who: Operator) -> Done:
        known_robot(robot_id)
        if runtime.snapshot().paused_all:
            raise HTTPException(409, "the whole fleet is paused: resume all first")
        return act(who, "resume", robot_id, lambda: runtime.resume(robot_id))

    @app.post("/api/robots/{robot_id}/out-of-service", response_model=Done, responses=ERRORS, tags=["robots"])
    def out_of_service(robot_id: RobotId, who: Operator) -> Done:
        known_robot(robot_id)
        return act(who, "out_of_service", robot_id, lambda: runtime.set_in_service(robot_id, False))

    @app.post("/api/robots/{robot_id}/in-service", response_model=Done, responses=ERRORS, tags=["robots"])
    def in_service(robot_id: RobotId, who: Operator) -> Done:
        known_robot(robot_id)
        return act(who, "in_service", robot_id, lambda: runtime.set_in_service(robot_id, True))

    @app.post("/api/robots/{robot_id}/charge", response_model=Done, responses=ERRORS, tags=["robots"])
    def send_to_charge(robot_id: RobotId, who: Operator) -> Done:
        """Charge the robot until full. A free robot goes to the nearest free charger at once
        (or queues for one, as a low robot does); a busy or paused one finishes first.
        `detail.result.stage`: "charge", "wait_charger" or "when_free". 409 when it is
        faulted, offline, out of service, or charging or on its way to charge already."""
        known_robot(robot_id)
        return act(who, "charge", robot_id,
                   lambda: {"stage": warehouse.send_to_charge(robot_id, runtime.clock.now())})

    @app.post("/api/shelves/{shelf_id}/move", response_model=Done, responses=ERRORS, tags=["floor"])
    def move_shelf(shelf_id: ShelfId, body: Position, who: Operator) -> Done:
        """The cell becomes the shelf's home, and the nearest free robot takes the shelf
        there (`detail.result.task`: the move_shelf task). 422: the cell is outside the map
        or not a storage cell; 409: another shelf stands on it or has its home there, or the
        shelf is carried, booked for a port or flagged."""
        if shelf_id not in runtime.snapshot().shelves:
            raise HTTPException(404, f"unknown shelf {shelf_id!r}")
        target = Cell(body.x, body.y)
        try:
            check_storage_cell(wmap, target)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return act(who, "move_shelf", shelf_id,
                   lambda: {"task": warehouse.move_shelf(shelf_id, target, runtime.clock.now())}, body.model_dump())

    @app.post("/api/fleet/pause", response_model=Done, responses=ERRORS, tags=["fleet"])
    def pause_all(who: Operator) -> Done:
        return act(who, "pause", "fleet", lambda: runtime.pause(None))

    @app.post("/api/fleet/resume", response_model=Done, responses=ERRORS, tags=["fleet"])
    def resume_all(who: Operator) -> Done:
        return act(who, "resume", "fleet", lambda: runtime.resume(None))

    @app.post("/api/fleet/emergency-stop", response_model=Done, responses=ERRORS, tags=["fleet"])
    def emergency_stop(who: Operator) -> Done:
        return act(who, "emergency_stop", "fleet", runtime.emergency_stop)

    @app.post("/api/fleet/reset", response_model=Done, responses=ERRORS, tags=["fleet"])
    def reset(who: Operator) -> Done:
        return act(who, "reset", "fleet", runtime.reset)

    @app.post("/api/cells/{x}/{y}/block", response_model=Done, responses=ERRORS, tags=["floor"])
    def block(x: Coordinate, y: Coordinate, who: Operator) -> Done:
        c = cell(x, y)
        if (x, y) in runtime.snapshot().blocked:
            raise HTTPException(409, f"cell ({x}, {y}) is blocked already")
        return act(who, "block", f"{x},{y}", lambda: runtime.block(c))

    @app.post("/api/cells/{x}/{y}/unblock", response_model=Done, responses=ERRORS, tags=["floor"])
    def unblock(x: Coordinate, y: Coordinate, who: Operator) -> Done:
        c = cell(x, y)
        if (x, y) not in runtime.snapshot().blocked:
            raise HTTPException(409, f"cell ({x}, {y}) is not blocked")
        return act(who, "unblock", f"{x},{y}", lambda: runtime.unblock(c))

    @app.post("/api/alarms/{alarm_id}/acknowledge", response_model=Done, responses=ERRORS, tags=["alarms"])
    def acknowledge(alarm_id: Annotated[int, PathParam(ge=1, le=2**62)], who: Operator) -> Done:
        alarm = store.alarm(alarm_id)
        if alarm is None:
            raise HTTPException(404, f"unknown alarm {alarm_id}")
        if alarm.acknowledged_at is not None:
            raise HTTPException(409, f"alarm {alarm_id} was acknowledged by {alarm.acknowledged_by} already")
        audit_id = store.record(time.time(), who.name, who.role, "acknowledge", f"alarm {alarm_id}")
        if not store.acknowledge_alarm(alarm_id, who.name, time.time()):
            raise HTTPException(409, f"alarm {alarm_id} was acknowledged meanwhile")
        feed.alarms_changed()
        return Done(audit_id=audit_id)

    # --- live feed and console ------------------------------------------------------------
    @app.websocket("/api/live")
    async def live(socket: WebSocket) -> None:
        await socket.accept()
        try:
            hello = orjson.loads(await asyncio.wait_for(socket.receive_text(), 10))
            who = auth.identify(str(hello.get("token", ""))) if isinstance(hello, dict) else None
        except (asyncio.TimeoutError, orjson.JSONDecodeError, WebSocketDisconnect):
            who = None
        if who is None:
            await socket.close(code=4401, reason="log in first: send {\"token\": ...} as the first message")
            return
        await feed.serve(socket)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app


def _robot_dict(snap, robot_id: str) -> dict:
    """A robot as RobotOut describes it."""
    x, y, heading, state, charge, shelf, errand = snap.robots[robot_id]
    return {"id": robot_id, "cell": {"x": x, "y": y}, "heading": heading, "state": state, "charge": charge,
            "shelf": shelf, "errand": errand, "errors": snap.errors.get(robot_id, {}),
            "held": [{"x": a, "y": b} for a, b in snap.held.get(robot_id, ())]}


def _robot_out(snap, robot_id: str) -> RobotOut:
    return RobotOut.model_validate(_robot_dict(snap, robot_id))


def _shelf_out(shelf_id: str, where, row: dict | None) -> ShelfOut:
    cell = Position(x=where[0], y=where[1]) if isinstance(where, tuple) else None
    home = Position(x=row["home_x"], y=row["home_y"]) if row else None
    return ShelfOut(id=shelf_id, cell=cell, robot=where if isinstance(where, str) else None, home=home)


def _stations_out(runtime: Runtime) -> list[StationOut]:
    at = {(row[0], row[1]): robot_id for robot_id, row in runtime.snapshot().robots.items()}
    out = []
    for s in runtime.wmap.stations:
        front_first = [*s.working, *(c for queue in s.queues for c in reversed(queue))]
        out.append(StationOut(id=s.id, kind=s.kind.value, working=[Position(x=c.x, y=c.y) for c in s.working],
                              queues=[[Position(x=c.x, y=c.y) for c in queue] for queue in s.queues],
                              operator_side=int(s.operator_side),
                              robots=[at[(c.x, c.y)] for c in front_first if (c.x, c.y) in at]))
    return out
