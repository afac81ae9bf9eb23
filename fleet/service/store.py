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
from dataclasses import dataclass
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
    event,
    func,
    insert,
    select,
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


#: MIGRATIONS[n] moves the schema from version n to n + 1. Append; never edit a shipped one.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]


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
    def raise_alarm(self, now: float, kind: str, severity: str, message: str, robot: str | None = None) -> int:
        with self._write, self.engine.begin() as conn:
            return conn.execute(insert(alarms).values(
                raised=now, kind=kind, severity=severity, robot=robot, message=message)).inserted_primary_key[0]

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
