"""The scheduler's side of the HTTP API: orders, inbound notes, tasks, inventory, station
terminals and KPIs (mounted by fleet.service.api.create_app).

Input is checked in the request's thread against what cannot change (the catalogue, the
map's stations): a bad request gets a specific 4xx and is not audited. What depends on
the warehouse's state (a duplicate order id, the lit pick) is checked on the loop thread
after the audit entry is written, and refused with a 409 before anything changes.
Lists come from the store, which holds what was acknowledged; station terminals and KPIs
from the scheduler itself, read between two control cycles.
"""


import concurrent.futures
from dataclasses import asdict
from typing import Annotated, Callable, Literal

from fastapi import FastAPI, HTTPException, Path as PathParam, Query, Request
from pydantic import BaseModel, Field, ValidationError

from fleet.domain.order import LABEL_FIELDS
from fleet.service import intake
from fleet.service.auth import Principal
from fleet.service.intake import InboundIn, IntakeError, OrderIn
from fleet.service.kpi_history import KpiHistory
from fleet.service.runtime import OperatorError, Runtime
from fleet.service.store import Store
from fleet.service.terminal import StationView, Terminals
from fleet.service.warehouse import Warehouse
from maps.model import StationKind

#: Bytes in one bulk upload at most.
MAX_UPLOAD = 4 * 1024 * 1024
EntityId = Annotated[str, PathParam(min_length=1, max_length=64)]
#: An order or note id as created (fleet.service.intake.ID_PATTERN): anything else cannot exist.
StoredId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=intake.ID_PATTERN)]
AfterId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=intake.ID_PATTERN)]
OrderStatusName = Literal["pending", "released", "picking", "picked", "packed", "cancelled"]
NoteStatusName = Literal["open", "stowing", "stowed", "cancelled"]
TaskStatusName = Literal["pending", "assigned", "in_progress", "done", "failed", "blocked"]


class LineOut(BaseModel):
    line_no: int
    sku: str
    quantity: int
    picked: int


class CustomerOut(BaseModel):
    """The customer as far as the reader's role needs it (docs/service.md, roles)."""

    name: str
    address: str
    reference: str | None
    phone: str | None = Field(description="contact data: admins only (null for an operator)")
    email: str | None = Field(description="contact data: admins only (null for an operator)")


class OrderOut(BaseModel):
    id: str
    created: float
    priority: int
    cutoff: float | None
    status: str
    updated: float | None
    customer: CustomerOut | None = Field(description="null when the order has none, and always for a viewer")
    lines: list[LineOut]


class InboundLineOut(BaseModel):
    line_no: int
    sku: str
    quantity: int
    priority: int | None
    stowed: int


class InboundOut(BaseModel):
    id: str
    created: float
    priority: int
    status: str
    updated: float | None
    lines: list[InboundLineOut]


class TaskOut(BaseModel):
    id: str
    kind: str
    target: str = Field(description="station id, or 'x,y' of a cell")
    created: float
    priority: int
    robot: str | None
    shelf: str | None
    status: str
    reason: str | None
    updated: float | None


class BinStock(BaseModel):
    bin: str
    shelf: str
    quantity: int


class StockOut(BaseModel):
    sku: str
    name: str
    total: int
    bins: list[BinStock]


class TerminalOut(BaseModel):
    id: str
    kind: str
    manned: bool = Field(description="a person works it from the console (else a simulated operator, if on)")
    queue: list[str] = Field(description="robots in the port's line, the one at the working cell first")
    shelf: str | None = Field(description="shelf at the working cell being worked")
    robot: str | None
    bins: list[str] = Field(description="the shelf's bins, labelled SHELF-L<level>-B<place>")
    lit: dict | None = Field(description="pick: bin, sku, name, quantity, box, order, order_shelf, slot; "
                                         "stow: bin, sku, name, quantity, note, scanned")
    done: int
    total: int
    units: int


class StationLines(BaseModel):
    kind: str
    lines: list[int] = Field(description="lines worked at the station since the history began, at each t (pick "
                                         "lines; puts at a stow station), counted as /api/kpis counts them: "
                                         "when the shelf leaves the port")
    lines_per_hour: list[float] = Field(description="lines per hour over the window_s before each t (over less "
                                                    "near the start of the history)")


class KpiHistoryOut(BaseModel):
    interval_s: float = Field(description="fleet seconds between two samples")
    keep: int = Field(description="samples kept; older ones drop out")
    window_s: float = Field(description="the window lines_per_hour is taken over")
    started: float | None = Field(description="fleet clock when the history began (null before the first cycle)")
    t: list[float] = Field(description="fleet clock of each sample, oldest first")
    robots: dict[str, list[int]] = Field(description="state -> robots in that state at each t")
    stations: dict[str, StationLines]


class Accepted(BaseModel):
    ok: bool = True
    audit_id: int
    ids: list[str]


class Quantity(BaseModel):
    quantity: int = Field(ge=0, le=100000)


class ItemScan(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100000)


class BinScan(BaseModel):
    bin: str = Field(min_length=1, max_length=64)


def read_between_cycles(runtime: Runtime, fn: Callable):
    """A read of the scheduler on the loop thread, between two cycles."""
    try:
        return runtime.call(fn)
    except OperatorError as exc:
        raise HTTPException(503, str(exc)) from None
    except concurrent.futures.TimeoutError:
        raise HTTPException(503, "the control loop did not answer in time") from None


def terminal_out(view: StationView) -> TerminalOut:
    return TerminalOut(**asdict(view))


def for_role(order: dict, who: Principal) -> dict:
    """The stored order with its customer trimmed to what `who` needs: an admin sees it
    all, an operator (who packs and labels) the label fields, a viewer none of it."""
    customer = order["customer"]
    if customer is None or who.may("admin"):
        return order
    if not who.may("operator"):
        return order | {"customer": None}
    return order | {"customer": {f: v if f in LABEL_FIELDS else None for f, v in customer.items()}}


def add_warehouse_routes(app: FastAPI, runtime: Runtime, store: Store, viewer, operator,
                         act: Callable, errors: dict) -> Terminals:
    """`viewer`/`operator`: the role dependencies; `act(who, action, target, command,
    detail)` audits, then runs the command on the loop thread (create_app's)."""
    warehouse: Warehouse = runtime.work
    terminals = Terminals(warehouse)
    catalogue = warehouse.inventory.catalogue
    kinds = {s.id: s.kind for s in runtime.wmap.stations}
    history = KpiHistory(list(kinds))
    warehouse.after_cycle.append(lambda: history.observe(runtime.clock.now(), warehouse.scheduler.presented,
                                                         runtime.motion.robots.values()))

    def read(fn):
        return read_between_cycles(runtime, fn)

    def station(station_id: str, kind: StationKind | None = None) -> str:
        if station_id not in kinds:
            raise HTTPException(404, f"unknown station {station_id!r}")
        if kind is not None and kinds[station_id] is not kind:
            raise HTTPException(400, f"station {station_id} is a {kinds[station_id].value} station; "
                                     f"this needs a {kind.value} station")
        return station_id

    def checked(fn):
        try:
            return fn()
        except IntakeError as exc:
            raise HTTPException(422, str(exc)) from None

    async def upload(request: Request, model, from_csv) -> list:
        """A bulk body: a JSON list of `model`, or CSV (Content-Type text/csv)."""
        body = await request.body()
        if len(body) > MAX_UPLOAD:
            raise HTTPException(413, f"upload of {len(body)} bytes; at most {MAX_UPLOAD}, split it")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "the upload is not UTF-8 text") from None
        if kind == "text/csv":
            return checked(lambda: from_csv(text))
        if kind != "application/json":
            raise HTTPException(415, "send a JSON list (application/json) or CSV (text/csv)")
        try:
            items = BulkOf[model].validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[:intake.MAX_PROBLEMS]
            raise HTTPException(422, "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                               for e in first)) from None
        return items

    def take(who, action: str, orders: list, notes: list) -> Accepted:
        target = ",".join(c.id for c in (orders or notes)[:5]) + ("..." if len(orders or notes) > 5 else "")
        done = act(who, action, target, lambda: warehouse.take(orders, notes, runtime.clock.now()),
                   {"count": len(orders or notes)})
        return Accepted(audit_id=done.audit_id, ids=done.detail["result"])

    # --- orders ---------------------------------------------------------------------------
    @app.get("/api/orders", response_model=list[OrderOut], responses=errors, tags=["orders"])
    def list_orders(who: viewer, status: OrderStatusName | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    after: AfterId = None) -> list[dict]:
        return [for_role(o, who) for o in store.orders(status=status, limit=limit, after=after)]

    @app.get("/api/orders/{order_id}", response_model=OrderOut, responses=errors, tags=["orders"])
    def get_order(order_id: StoredId, who: viewer) -> dict:
        found = store.orders(ids=[order_id], limit=1)
        if not found:
            raise HTTPException(404, f"unknown order {order_id!r}")
        return for_role(found[0], who)

    @app.post("/api/orders", response_model=Accepted, responses=errors, tags=["orders"])
    def create_order(body: OrderIn, who: operator) -> Accepted:
        return take(who, "create_order", checked(lambda: intake.check_orders([body], catalogue)), [])

    @app.post("/api/orders/bulk", response_model=Accepted, responses=errors, tags=["orders"],
              openapi_extra=_bulk_body("OrderIn", "order_id,sku,quantity[,priority,cutoff_in_s,customer_name,"
                                                  "customer_address,customer_reference,customer_phone,customer_email]"))
    async def create_orders(request: Request, who: operator) -> Accepted:
        orders = await upload(request, OrderIn, intake.orders_from_csv)
        return await _in_thread(take, who, "create_orders", checked(lambda: intake.check_orders(orders, catalogue)), [])

    @app.post("/api/orders/{order_id}/cancel", response_model=Accepted, responses=errors, tags=["orders"])
    def cancel_order(order_id: StoredId, who: operator) -> Accepted:
        if not store.orders(ids=[order_id], limit=1):
            raise HTTPException(404, f"unknown order {order_id!r}")
        done = act(who, "cancel_order", order_id, lambda: warehouse.cancel_order(order_id, runtime.clock.now()))
        return Accepted(audit_id=done.audit_id, ids=[order_id])

    # --- inbound notes --------------------------------------------------------------------
    @app.get("/api/inbound", response_model=list[InboundOut], responses=errors, tags=["inbound"])
    def list_notes(who: viewer, status: NoteStatusName | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   after: AfterId = None) -> list[dict]:
        return store.notes(status=status, limit=limit, after=after)

    @app.post("/api/inbound", response_model=Accepted, responses=errors, tags=["inbound"])
    def create_note(body: InboundIn, who: operator) -> Accepted:
        return take(who, "create_inbound", [], checked(lambda: intake.check_notes([body], catalogue)))

    @app.post("/api/inbound/bulk", response_model=Accepted, responses=errors, tags=["inbound"],
              openapi_extra=_bulk_body("InboundIn", "note_id,sku,quantity[,priority,line_priority]"))
    async def create_notes(request: Request, who: operator) -> Accepted:
        notes = await upload(request, InboundIn, intake.notes_from_csv)
        return await _in_thread(take, who, "create_inbound", [], checked(lambda: intake.check_notes(notes, catalogue)))

    # --- tasks, inventory, KPIs -----------------------------------------------------------
    @app.get("/api/tasks", response_model=list[TaskOut], responses=errors, tags=["tasks"])
    def list_tasks(who: viewer, status: TaskStatusName | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict]:
        return store.tasks(status=status, limit=limit)

    @app.get("/api/inventory/{sku}", response_model=StockOut, responses=errors, tags=["inventory"])
    def where_is(sku: EntityId, who: viewer) -> StockOut:
        if sku not in catalogue:
            raise HTTPException(404, f"unknown SKU {sku!r}")
        bins = [BinStock(**row) for row in store.where(sku)]
        return StockOut(sku=sku, name=catalogue[sku].name, total=sum(b.quantity for b in bins), bins=bins)

    @app.get("/api/kpis", response_model=dict, responses=errors, tags=["kpis"])
    def kpis(who: viewer) -> dict:
        """The figures of `fleet sim --json` that need no sampling (docs/kpis.md)."""
        return read(lambda: warehouse.kpis(runtime.clock.now()))

    @app.get("/api/kpis/history", response_model=KpiHistoryOut, responses=errors, tags=["kpis"])
    def kpi_history(who: viewer,
                    since: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description=(
                        "only samples after this fleet time (the last t a client has): incremental"))] = None,
                    window_s: Annotated[float, Query(gt=0, le=7 * 86400, allow_inf_nan=False, description=(
                        "lines per hour over this many fleet seconds before each sample"))] = 900.0,
                    station: Annotated[list[str] | None, Query(description="these stations only (repeat)")] = None,
                    ) -> dict:
        """Lines per hour per station and robots by state over the last hours, one sample per
        interval_s of fleet time, for the console's charts (docs/service.md)."""
        if window_s < history.interval_s:
            raise HTTPException(422, f"window_s {window_s:g} is shorter than the sampling interval "
                                     f"({history.interval_s:g} s): nothing to count over")
        unknown = sorted(set(station or ()) - kinds.keys())
        if unknown:
            raise HTTPException(422, f"unknown station(s) {', '.join(repr(u[:64]) for u in unknown[:5])}; "
                                     f"stations are {', '.join(kinds)}")
        out = history.series(since, window_s, list(dict.fromkeys(station)) if station else None)
        for station_id, series in out["stations"].items():
            series["kind"] = kinds[station_id].value
        return out

    # --- stations and their terminals -----------------------------------------------------
    @app.get("/api/stations/{station_id}/terminal", response_model=TerminalOut, responses=errors, tags=["stations"])
    def terminal(station_id: EntityId, who: viewer) -> TerminalOut:
        station(station_id)
        return terminal_out(read(lambda: terminals.view(station_id)))

    def key(who, action: str, station_id: str, fn, detail: dict | None = None) -> TerminalOut:
        done = act(who, action, station_id, lambda: asdict(fn()), detail)
        return TerminalOut(**done.detail["result"])

    @app.post("/api/stations/{station_id}/terminal/pick-start", response_model=TerminalOut, responses=errors,
              tags=["stations"])
    def pick_start(station_id: EntityId, who: operator) -> TerminalOut:
        station(station_id, StationKind.PICK)
        return key(who, "pick_start", station_id, lambda: terminals.start_pick(station_id))

    @app.post("/api/stations/{station_id}/terminal/confirm", response_model=TerminalOut, responses=errors,
              tags=["stations"])
    def confirm(station_id: EntityId, body: Quantity, who: operator) -> TerminalOut:
        station(station_id, StationKind.PICK)
        if body.quantity == 0:
            raise HTTPException(400, "confirm moves at least 1 unit; report a short pick when the bin is empty")
        return key(who, "pick_confirm", station_id,
                   lambda: terminals.confirm(station_id, body.quantity, runtime.clock.now()), body.model_dump())

    @app.post("/api/stations/{station_id}/terminal/short-pick", response_model=TerminalOut, responses=errors,
              tags=["stations"])
    def short_pick(station_id: EntityId, body: Quantity, who: operator) -> TerminalOut:
        station(station_id, StationKind.PICK)
        return key(who, "short_pick", station_id,
                   lambda: terminals.short_pick(station_id, body.quantity, runtime.clock.now()), body.model_dump())

    @app.post("/api/stations/{station_id}/terminal/stow-scan", response_model=TerminalOut, responses=errors,
              tags=["stations"])
    def stow_scan(station_id: EntityId, body: ItemScan, who: operator) -> TerminalOut:
        station(station_id, StationKind.STOW)
        if body.sku not in catalogue:
            raise HTTPException(422, f"unknown SKU {body.sku!r}")
        return key(who, "stow_scan", station_id, lambda: terminals.scan_item(station_id, body.sku, body.quantity),
                   body.model_dump())

    @app.post("/api/stations/{station_id}/terminal/bin-scan", response_model=TerminalOut, responses=errors,
              tags=["stations"])
    def bin_scan(station_id: EntityId, body: BinScan, who: operator) -> TerminalOut:
        station(station_id, StationKind.STOW)
        return key(who, "bin_scan", station_id, lambda: terminals.scan_bin(station_id, body.bin, runtime.clock.now()),
                   body.model_dump())

    return terminals


class _BulkOf:
    """`BulkOf[Model]`: a TypeAdapter for a non-empty JSON list of Model, cached."""

    def __init__(self) -> None:
        self._adapters: dict = {}

    def __getitem__(self, model):
        from pydantic import TypeAdapter

        if model not in self._adapters:
            self._adapters[model] = TypeAdapter(Annotated[list[model], Field(min_length=1, max_length=intake.MAX_LINES)])
        return self._adapters[model]


BulkOf = _BulkOf()


async def _in_thread(fn, *args):
    """The blocking part of an async route (audit write, loop call) off the event loop."""
    import asyncio

    return await asyncio.to_thread(fn, *args)


def _bulk_body(model: str, columns: str) -> dict:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "minItems": 1,
                                        "items": {"$ref": f"#/components/schemas/{model}"}}},
        "text/csv": {"schema": {"type": "string", "description": f"header {columns}; one row per line"}}}}}
