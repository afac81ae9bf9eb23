"""Durable facts in one database, SQLite (WAL) embedded or PostgreSQL, behind SQLAlchemy Core.

Every fact the service must not lose (robots known, shelf positions and homes, alarms, the
audit log of operator actions, and for the scheduler: orders, inbound notes, tasks,
inventory per bin) is committed in a transaction before the service acts on it or answers
the request. The schema is versioned: MIGRATIONS[n] takes a database from version n to
n + 1, and `Store.open` applies the missing ones under a lock-free single-writer
assumption (one service per database).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

robots = Table(
    "robots", metadata,
    Column("id", String(64), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("cell_x", Integer), Column("cell_y", Integer),
    Column("out_of_service", Boolean, nullable=False, default=False),
)

shelves = Table(
    "shelves", metadata,
    Column("id", String(64), primary_key=True),
    Column("home_x", Integer, nullable=False), Column("home_y", Integer, nullable=False),
    Column("cell_x", Integer), Column("cell_y", Integer),  # null while carried
    Column("robot", String(64)),  # the robot carrying it, if any
    Column("updated", Float, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("user", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
)

alarms = Table(
    "alarms", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("raised", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("robot", String(64)),
    Column("message", Text, nullable=False),
    Column("acknowledged_by", String(64)),
    Column("acknowledged_at", Float),
    Column("cleared_at", Float),
)

# --- the scheduler's facts (fleet/domain): created now so the schema has one history ----
orders = Table(
    "orders", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("cutoff", Float),
    Column("status", String(16), nullable=False),
    Column("updated", Float),
)
order_lines = Table(
    "order_lines", metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("picked", Integer, nullable=False, default=0),
)
inbound_notes = Table(
    "inbound_notes", metadata,
    Column("id", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("updated", Float),
)
inbound_lines = Table(
    "inbound_lines", metadata,
    Column("note_id", String(64), ForeignKey("inbound_notes.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("priority", Integer),
    Column("stowed", Integer, nullable=False, default=0),
)
tasks = Table(
    "tasks", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("target", String(64), nullable=False),  # station id or "x,y"
    Column("created", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("robot", String(64)),
    Column("shelf", String(64)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("updated", Float),
)
inventory = Table(
    "inventory", metadata,
    Column("bin", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("shelf", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_version])


def _v2(conn: Connection) -> None:
    """Where is SKU X, and the orders and tasks panels by state, without a full scan. Plain
    DDL: an Index object would attach to the tables and _v1's create_all would make it."""
    conn.execute(text("CREATE INDEX ix_inventory_sku ON inventory (sku)"))
    conn.execute(text("CREATE INDEX ix_orders_status ON orders (status)"))
    conn.execute(text("CREATE INDEX ix_tasks_status ON tasks (status)"))


#: Tables of version 3 and later, kept out of `metadata` so that _v1 never creates them;
#: each migration names the tables it creates.
later = MetaData()

#: Where a released order's box stands on its put wall: after a crash the box is put back
#: there, with the units the order's lines say were picked into it.
box_places = Table(
    "box_places", later,
    Column("order_id", String(64), primary_key=True),
    Column("shelf", String(64), nullable=False),
    Column("slot", String(64), nullable=False),
)

#: The cells traffic control granted each robot (its own first), as a JSON list of [x, y]:
#: after a crash a robot that may still be driving keeps them until it reports again.
robot_cells = Table(
    "robot_cells", later,
    Column("robot", String(64), primary_key=True),
    Column("cells", Text, nullable=False),
)


def _v3(conn: Connection) -> None:
    later.create_all(conn, tables=[box_places, robot_cells])


#: Who an order goes to (fleet.domain.order.Customer), apart from the order: personal data
#: is read only where a role may see it, and can be erased without touching the order.
#: Lengths as the domain bounded them when version 4 shipped.
order_customers = Table(
    "order_customers", later,
    Column("order_id", String(64), ForeignKey(orders.c.id), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("address", String(300), nullable=False),
    Column("reference", String(64)),
    Column("phone", String(32)),
    Column("email", String(254)),
)
CUSTOMER_COLUMNS = tuple(c.name for c in order_customers.columns if c.name != "order_id")


def _v4(conn: Connection) -> None:
    order_customers.create(conn)


#: MIGRATIONS[n] moves the schema from version n to n + 1. Append; never edit a shipped one.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4]

#: Order and note states the scheduler still works on (restored after a restart); a
#: picked order's box waits on its put wall for packing.
OPEN_ORDER = ("pending", "released", "picking", "picked")
OPEN_NOTE = ("open", "stowing")
OPEN_TASK = ("pending", "assigned", "in_progress", "blocked")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    user: str
    role: str
    action: str
    target: str
    detail: dict


@dataclass(frozen=True)
class Alarm:
    id: int
    raised: float
    kind: str
    severity: str
    robot: str | None
    message: str
    acknowledged_by: str | None
    acknowledged_at: float | None
    cleared_at: float | None


@dataclass
class Bookings:
    """What the warehouse changed since the last write, written in one transaction: no
    stock movement without the order line or note line it served, and no status alone."""

    orders: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (status, updated)
    notes: dict[str, tuple[str, float]] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)  # id -> the tasks row
    bins: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)  # label -> (shelf, contents)
    picked: list[tuple[str, str, int]] = field(default_factory=list)  # order, sku, units added
    stowed: list[tuple[str, str, int]] = field(default_factory=list)  # note, sku, units added
    placed: dict[str, tuple[str, str]] = field(default_factory=dict)  # order -> (order shelf, slot) of its box
    homes: dict[str, tuple[int, int]] = field(default_factory=dict)  # shelf -> its home, changed by slotting

    def __bool__(self) -> bool:
        return any((self.orders, self.notes, self.tasks, self.bins, self.picked, self.stowed, self.placed, self.homes))


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer; a lock here turns "database is locked" into a short wait.
        self._write = threading.Lock()

    @classmethod
    def open(cls, url: str) -> "Store":
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record) -> None:  # WAL: readers never wait for the writer
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        else:
            engine = create_engine(url, pool_pre_ping=True)
        store = cls(engine)
        store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ---------------------------------------------------------------------------
    def version(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one()

    def migrate(self, now: float = 0.0) -> int:
        """Apply the migrations the database lacks, each in its own transaction."""
        with self._write, self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
        current = self.version()
        for n in range(current, len(MIGRATIONS)):
            with self._write, self.engine.begin() as conn:
                MIGRATIONS[n](conn)
                conn.execute(insert(schema_version).values(version=n + 1, applied_at=now))
        return len(MIGRATIONS)

    # --- robots and shelves ---------------------------------------------------------------
    def known_robots(self) -> dict[str, dict]:
        with self.engine.connect() as conn:
            return {r.id: r._asdict() for r in conn.execute(select(robots))}

    def remember_robots(self, rows: Iterable[tuple[str, int, int]], now: float) -> None:
        """Robots seen for the first time (id, cell x, y); known ones are left alone."""
        known = self.known_robots()
        new = [{"id": r, "first_seen": now, "cell_x": x, "cell_y": y, "out_of_service": False}
               for r, x, y in rows if r not in known]
        if new:
            with self._write, self.engine.begin() as conn:
                conn.execute(insert(robots), new)

    def set_out_of_service(self, robot_id: str, out: bool) -> None:
        with self._write, self.engine.begin() as conn:
            conn.execute(update(robots).where(robots.c.id == robot_id).values(out_of_service=out))

    def box_places(self) -> dict[str, tuple[str, str]]:
        """Order -> (order shelf, slot) its box was put on."""
        with self.engine.connect() as conn:
            return {r.order_id: (r.shelf, r.slot) for r in conn.execute(select(box_places))}

    def held_cells(self) -> dict[str, list[tuple[int, int]]]:
        """Robot -> the cells it was last granted, its own first."""
        with self.engine.connect() as conn:
            return {r.robot: [tuple(c) for c in json.loads(r.cells)] for r in conn.execute(select(robot_cells))}

    def hold_cells(self, changed: dict[str, list[tuple[int, int]]]) -> None:
        """Robots whose granted cells changed, in one transaction."""
        if not changed:
            return
        with self._write, self.engine.begin() as conn:
            conn.execute(delete(robot_cells).where(robot_cells.c.robot.in_(list(changed))))
            conn.execute(insert(robot_cells), [{"robot": r, "cells": json.dumps(cells)} for r, cells in changed.items()])

    def shelves(self) -> dict[str, dict]:
        with self.engine.connect() as conn:
            return {r.id: r._asdict() for r in conn.execute(select(shelves))}

    def remember_shelves(self, homes: dict[str, tuple[int, int]], now: float) -> None:
        known = self.shelves()
        new = [{"id": s, "home_x": x, "home_y": y, "cell_x": x, "cell_y": y, "robot": None, "updated": now}
               for s, (x, y) in homes.items() if s not in known]
        if new:
            with self._write, self.engine.begin() as conn:
                conn.execute(insert(shelves), new)

    def move_shelves(self, moves: list[tuple[str, tuple[int, int] | None, str | None]], now: float) -> None:
        """Shelves picked up (cell None, robot set) or set down (cell set, robot None), in
        one transaction per control cycle."""
        if not moves:
            return
        with self._write, self.engine.begin() as conn:
            for shelf_id, cell, robot in moves:
                conn.execute(update(shelves).where(shelves.c.id == shelf_id).values(
                    cell_x=cell[0] if cell else None, cell_y=cell[1] if cell else None, robot=robot, updated=now))

    def set_shelf_home(self, shelf_id: str, home: tuple[int, int], now: float) -> None:
        """An operator moved the shelf: its new home, before a robot takes it there."""
        with self._write, self.engine.begin() as conn:
            done = conn.execute(update(shelves).where(shelves.c.id == shelf_id).values(
                home_x=home[0], home_y=home[1], updated=now))
            if done.rowcount != 1:
                raise KeyError(f"the store knows no shelf {shelf_id!r}")

    # --- audit log ------------------------------------------------------------------------
    def record(self, now: float, user: str, role: str, action: str, target: str = "",
               detail: dict | None = None) -> int:
        """An operator action, committed before it is carried out."""
        with self._write, self.engine.begin() as conn:
            return conn.execute(insert(audit).values(
                at=now, user=user, role=role, action=action, target=target,
                detail=json.dumps(detail or {}, sort_keys=True))).inserted_primary_key[0]

    def audit_log(self, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        q = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before is not None:
            q = q.where(audit.c.id < before)
        with self.engine.connect() as conn:
            return [AuditEntry(r.id, r.at, r.user, r.role, r.action, r.target, json.loads(r.detail))
                    for r in conn.execute(q)]

    # --- alarms ---------------------------------------------------------------------------
    def raise_alarm(self, now: float, kind: str, severity: str, message: str, robot: str | None = None,
                    event: bool = False) -> int:
        """`event`: something that happened rather than a condition that lasts (a short
        pick, a job reassigned): cleared at once, listed as active until acknowledged."""
        with self._write, self.engine.begin() as conn:
            return conn.execute(insert(alarms).values(
                raised=now, kind=kind, severity=severity, robot=robot, message=message,
                cleared_at=now if event else None)).inserted_primary_key[0]

    def clear_alarm(self, alarm_id: int, now: float) -> None:
        with self._write, self.engine.begin() as conn:
            conn.execute(update(alarms).where(alarms.c.id == alarm_id, alarms.c.cleared_at.is_(None))
                         .values(cleared_at=now))

    def acknowledge_alarm(self, alarm_id: int, user: str, now: float) -> bool:
        """False when there is no such alarm or it was acknowledged already."""
        with self._write, self.engine.begin() as conn:
            done = conn.execute(update(alarms).where(alarms.c.id == alarm_id, alarms.c.acknowledged_at.is_(None))
                                .values(acknowledged_by=user, acknowledged_at=now))
            return done.rowcount == 1

    def alarm(self, alarm_id: int) -> Alarm | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alarms).where(alarms.c.id == alarm_id)).first()
        return Alarm(**row._asdict()) if row else None

    def alarms(self, active_only: bool = False, limit: int = 200) -> list[Alarm]:
        q = select(alarms).order_by(alarms.c.id.desc()).limit(limit)
        if active_only:
            q = q.where(alarms.c.cleared_at.is_(None) | alarms.c.acknowledged_at.is_(None))
        with self.engine.connect() as conn:
            return [Alarm(**r._asdict()) for r in conn.execute(q)]

    # --- orders and inbound notes ---------------------------------------------------------
    def taken_ids(self, kind: str, ids: Iterable[str]) -> set[str]:
        """Which of these order ("orders") or inbound note ("notes") ids exist already."""
        table = orders if kind == "orders" else inbound_notes
        wanted = list(set(ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):  # bounded IN lists on both databases
                found.update(conn.execute(select(table.c.id).where(table.c.id.in_(wanted[i:i + 500]))).scalars())
        return found

    def add_orders(self, new: list[dict]) -> None:
        """Orders with their lines and customer ({id, created, priority, cutoff, status,
        lines: [{sku, quantity}], customer: {name, address, reference, phone, email} or
        None or absent}), all or none."""
        if not new:
            return
        with self._write, self.engine.begin() as conn:
            conn.execute(insert(orders), [{k: o[k] for k in ("id", "created", "priority", "cutoff", "status")}
                                          | {"updated": o["created"]} for o in new])
            conn.execute(insert(order_lines), [{"order_id": o["id"], "line_no": n, "sku": line["sku"],
                                                "quantity": line["quantity"], "picked": 0}
                                               for o in new for n, line in enumerate(o["lines"], 1)])
            people = [{"order_id": o["id"]} | {c: o["customer"].get(c) for c in CUSTOMER_COLUMNS}
                      for o in new if o.get("customer")]
            if people:
                conn.execute(insert(order_customers), people)

    def add_notes(self, new: list[dict]) -> None:
        """Inbound notes with their lines ({id, created, priority, status, lines: [{sku,
        quantity, priority}]}), all or none."""
        if not new:
            return
        with self._write, self.engine.begin() as conn:
            conn.execute(insert(inbound_notes), [{k: n[k] for k in ("id", "created", "priority", "status")}
                                                 | {"updated": n["created"]} for n in new])
            conn.execute(insert(inbound_lines), [{"note_id": n["id"], "line_no": i, "sku": line["sku"],
                                                  "quantity": line["quantity"], "priority": line.get("priority"),
                                                  "stowed": 0}
                                                 for n in new for i, line in enumerate(n["lines"], 1)])

    def orders(self, status: str | None = None, limit: int = 100, after: str | None = None,
               ids: Iterable[str] | None = None) -> list[dict]:
        """Orders with their lines and `customer` (a dict of every field, or None), by id;
        `after` pages on. Whoever shows them trims the customer to the reader's role."""
        q = select(orders, *(order_customers.c[c].label(f"customer_{c}") for c in CUSTOMER_COLUMNS)) \
            .select_from(orders.outerjoin(order_customers, order_customers.c.order_id == orders.c.id)) \
            .order_by(orders.c.id).limit(limit)
        if status is not None:
            q = q.where(orders.c.status == status)
        if after is not None:
            q = q.where(orders.c.id > after)
        if ids is not None:
            q = q.where(orders.c.id.in_(list(ids)))
        out = self._with_lines(q, order_lines, order_lines.c.order_id)
        for row in out:
            customer = {c: row.pop(f"customer_{c}") for c in CUSTOMER_COLUMNS}
            row["customer"] = customer if customer["name"] is not None else None
        return out

    def notes(self, status: str | None = None, limit: int = 100, after: str | None = None) -> list[dict]:
        q = select(inbound_notes).order_by(inbound_notes.c.id).limit(limit)
        if status is not None:
            q = q.where(inbound_notes.c.status == status)
        if after is not None:
            q = q.where(inbound_notes.c.id > after)
        return self._with_lines(q, inbound_lines, inbound_lines.c.note_id)

    def _with_lines(self, q, lines: Table, parent: Column) -> list[dict]:
        with self.engine.connect() as conn:
            heads = [r._asdict() for r in conn.execute(q)]
            by_id = {h["id"]: h | {"lines": []} for h in heads}
            if by_id:
                for row in conn.execute(select(lines).where(parent.in_(list(by_id))).order_by(parent, lines.c.line_no)):
                    line = row._asdict()
                    by_id[line.pop(parent.name)]["lines"].append(line)
        return list(by_id.values())

    # --- what the warehouse did -----------------------------------------------------------
    def book(self, b: Bookings) -> None:
        """One transaction: statuses, tasks, bin contents, units picked and stowed, shelf homes."""
        if not b:
            return
        with self._write, self.engine.begin() as conn:
            for order_id, (status, at) in b.orders.items():
                conn.execute(update(orders).where(orders.c.id == order_id).values(status=status, updated=at))
            for note_id, (status, at) in b.notes.items():
                conn.execute(update(inbound_notes).where(inbound_notes.c.id == note_id).values(status=status, updated=at))
            for task_id, row in b.tasks.items():
                done = conn.execute(update(tasks).where(tasks.c.id == task_id).values(**row))
                if done.rowcount == 0:
                    conn.execute(insert(tasks).values(id=task_id, **row))
            for label, (shelf, contents) in b.bins.items():
                conn.execute(delete(inventory).where(inventory.c.bin == label))
                if contents:
                    conn.execute(insert(inventory), [{"bin": label, "sku": sku, "shelf": shelf, "quantity": q}
                                                     for sku, q in contents.items()])
            for order_id, sku, units in b.picked:
                conn.execute(update(order_lines).where(order_lines.c.order_id == order_id, order_lines.c.sku == sku)
                             .values(picked=order_lines.c.picked + units))
            if b.placed:
                conn.execute(delete(box_places).where(box_places.c.order_id.in_(list(b.placed))))
                conn.execute(insert(box_places), [{"order_id": o, "shelf": shelf, "slot": slot}
                                                  for o, (shelf, slot) in b.placed.items()])
            for shelf_id, (x, y) in b.homes.items():
                conn.execute(update(shelves).where(shelves.c.id == shelf_id).values(home_x=x, home_y=y))
            for note_id, sku, units in b.stowed:
                first_open = select(func.min(inbound_lines.c.line_no)).where(
                    inbound_lines.c.note_id == note_id, inbound_lines.c.sku == sku,
                    inbound_lines.c.stowed < inbound_lines.c.quantity).scalar_subquery()
                conn.execute(update(inbound_lines).where(inbound_lines.c.note_id == note_id,
                                                         inbound_lines.c.line_no == first_open)
                             .values(stowed=inbound_lines.c.stowed + units))

    def fail_open_tasks(self, reason: str, now: float) -> int:
        """After a restart the scheduler plans anew: the old run's unfinished tasks end."""
        with self._write, self.engine.begin() as conn:
            return conn.execute(update(tasks).where(tasks.c.status.in_(OPEN_TASK))
                                .values(status="failed", reason=reason, updated=now)).rowcount

    def tasks(self, status: str | None = None, limit: int = 200) -> list[dict]:
        q = select(tasks).order_by(tasks.c.created.desc(), tasks.c.id).limit(limit)
        if status is not None:
            q = q.where(tasks.c.status == status)
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(q)]

    # --- inventory ------------------------------------------------------------------------
    def has_inventory(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(inventory.c.bin).limit(1)).first() is not None

    def stock_by_bin(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(inventory.c.bin, inventory.c.sku, inventory.c.quantity)):
                out.setdefault(r.bin, {})[r.sku] = r.quantity
        return out

    def where(self, sku: str) -> list[dict]:
        """Bins holding the SKU: bin, shelf, quantity, fullest first."""
        q = select(inventory.c.bin, inventory.c.shelf, inventory.c.quantity).where(inventory.c.sku == sku) \
            .order_by(inventory.c.quantity.desc(), inventory.c.bin)
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(q)]
