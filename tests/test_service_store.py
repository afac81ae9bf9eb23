"""The store on both databases the service supports: the embedded SQLite (WAL) and the
machine's PostgreSQL (a fresh schema per test, dropped afterwards)."""

import uuid

import psycopg
import pytest
from sqlalchemy import inspect, text

from fleet.service.store import MIGRATIONS, Bookings, Store

PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh PostgreSQL schema dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fleet.db"
        return
    schema = f"fleet_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(url):
    s = Store.open(url)
    yield s
    s.close()


def test_schema_is_versioned_and_migrating_again_changes_nothing(store):
    assert store.version() == len(MIGRATIONS)
    tables = set(inspect(store.engine).get_table_names())
    assert {"robots", "shelves", "audit", "alarms", "orders", "order_lines", "inbound_notes", "inbound_lines",
            "tasks", "inventory", "schema_version"} <= tables
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from schema_version")).scalar_one() == len(MIGRATIONS)


def test_sqlite_runs_in_wal_mode(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path}/wal.db")
    with s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    s.close()


def test_audit_log_keeps_who_what_when_newest_first(store):
    first = store.record(10.0, "ann", "operator", "pause", "robot-01", {"why": "jam"})
    second = store.record(11.0, "bob", "admin", "block", "3,4")
    log = store.audit_log()
    assert [e.id for e in log] == [second, first]
    assert (log[1].user, log[1].role, log[1].action, log[1].target, log[1].at, log[1].detail) == \
        ("ann", "operator", "pause", "robot-01", 10.0, {"why": "jam"})
    assert [e.id for e in store.audit_log(before=second)] == [first]


def test_alarm_is_acknowledged_once_and_cleared(store):
    alarm_id = store.raise_alarm(5.0, "robot_error", "fatal", "robot-02: motor_stall", "robot-02")
    assert [a.id for a in store.alarms(active_only=True)] == [alarm_id]
    assert store.acknowledge_alarm(alarm_id, "ann", 6.0)
    assert not store.acknowledge_alarm(alarm_id, "bob", 7.0)
    assert store.alarm(alarm_id).acknowledged_by == "ann"
    assert [a.id for a in store.alarms(active_only=True)] == [alarm_id]  # acknowledged, not yet cleared
    store.clear_alarm(alarm_id, 8.0)
    assert store.alarms(active_only=True) == []
    assert store.alarm(alarm_id).cleared_at == 8.0
    assert store.alarm(999) is None


def test_robots_and_shelves_survive_a_reopen(store):
    store.remember_robots([("robot-01", 1, 2), ("robot-02", 3, 4)], 0.0)
    store.remember_robots([("robot-01", 9, 9)], 1.0)  # known: left alone
    store.set_out_of_service("robot-02", True)
    store.remember_shelves({"S-1": (5, 6), "S-2": (7, 8)}, 0.0)
    store.move_shelves([("S-1", None, "robot-01")], 2.0)
    store.move_shelves([("S-2", (1, 1), None)], 3.0)
    reopened = Store(store.engine)
    robots = reopened.known_robots()
    assert (robots["robot-01"]["cell_x"], robots["robot-01"]["cell_y"]) == (1, 2)
    assert robots["robot-02"]["out_of_service"] is True
    shelves = reopened.shelves()
    assert (shelves["S-1"]["cell_x"], shelves["S-1"]["robot"], shelves["S-1"]["home_x"]) == (None, "robot-01", 5)
    assert (shelves["S-2"]["cell_x"], shelves["S-2"]["cell_y"], shelves["S-2"]["updated"]) == (1, 1, 3.0)


def test_a_failed_transaction_leaves_nothing_behind(store):
    from sqlalchemy import insert

    from fleet.service.store import audit
    with pytest.raises(Exception):
        with store.engine.begin() as conn:
            conn.execute(insert(audit).values(at=1.0, user="ann", role="operator", action="pause", target="", detail="{}"))
            conn.execute(insert(audit).values(at=None, user="ann", role="operator", action="x", target="", detail="{}"))
    assert store.audit_log() == []


# --- the scheduler's facts --------------------------------------------------------------------------
def test_version_2_indexes_the_lookups(store):
    inspector = inspect(store.engine)
    assert "ix_inventory_sku" in {i["name"] for i in inspector.get_indexes("inventory")}
    assert "ix_orders_status" in {i["name"] for i in inspector.get_indexes("orders")}
    assert "ix_tasks_status" in {i["name"] for i in inspector.get_indexes("tasks")}


def order(order_id, *lines, status="pending", created=1.0):
    return {"id": order_id, "created": created, "priority": 0, "cutoff": None, "status": status,
            "lines": [{"sku": s, "quantity": q} for s, q in lines]}


def test_orders_are_stored_with_their_lines_and_paged(store):
    store.add_orders([order("O2", ("A", 1)), order("O1", ("A", 2), ("B", 1))])
    assert store.taken_ids("orders", ["O1", "O3"]) == {"O1"}
    assert store.taken_ids("notes", ["O1"]) == set()
    rows = store.orders()
    assert [r["id"] for r in rows] == ["O1", "O2"]
    assert rows[0]["lines"] == [{"line_no": 1, "sku": "A", "quantity": 2, "picked": 0},
                                {"line_no": 2, "sku": "B", "quantity": 1, "picked": 0}]
    assert [r["id"] for r in store.orders(after="O1")] == ["O2"]
    assert [r["id"] for r in store.orders(ids=["O2"])] == ["O2"]


def test_a_duplicate_order_adds_nothing(store):
    store.add_orders([order("O1", ("A", 1))])
    with pytest.raises(Exception):
        store.add_orders([order("O9", ("A", 1)), order("O1", ("B", 1))])
    assert [r["id"] for r in store.orders()] == ["O1"]  # O9 went with the failed transaction


def test_bookings_are_one_transaction(store):
    store.add_orders([order("O1", ("A", 2))])
    store.add_notes([{"id": "N1", "created": 0.0, "priority": 0, "status": "open",
                      "lines": [{"sku": "C", "quantity": 3}, {"sku": "C", "quantity": 3, "priority": 5}]}])
    task = {"kind": "fetch_shelf", "target": "pick-1", "created": 2.0, "priority": 0, "robot": None, "shelf": "SH1",
            "status": "pending", "reason": None, "updated": 2.0}
    store.book(Bookings(orders={"O1": ("picking", 3.0)}, notes={"N1": ("stowing", 3.0)}, tasks={"T1": task},
                        bins={"SH1-L1-B1": ("SH1", {"A": 5, "C": 3}), "SH1-L1-B2": ("SH1", {"A": 1})},
                        picked=[("O1", "A", 2)], stowed=[("N1", "C", 3), ("N1", "C", 1)]))
    assert store.orders()[0]["status"] == "picking" and store.orders()[0]["lines"][0]["picked"] == 2
    note = store.notes()[0]
    assert note["status"] == "stowing" and [line["stowed"] for line in note["lines"]] == [3, 1]
    assert store.stock_by_bin() == {"SH1-L1-B1": {"A": 5, "C": 3}, "SH1-L1-B2": {"A": 1}}
    assert store.where("A") == [{"bin": "SH1-L1-B1", "shelf": "SH1", "quantity": 5},
                                {"bin": "SH1-L1-B2", "shelf": "SH1", "quantity": 1}]
    # a bin's contents are replaced, an emptied bin disappears, a task is updated in place
    store.book(Bookings(tasks={"T1": task | {"status": "assigned", "robot": "r1"}}, bins={"SH1-L1-B2": ("SH1", {})}))
    assert store.where("A") == [{"bin": "SH1-L1-B1", "shelf": "SH1", "quantity": 5}]
    assert [(t["id"], t["status"], t["robot"]) for t in store.tasks()] == [("T1", "assigned", "r1")]
    assert store.has_inventory()
    assert store.fail_open_tasks("restarted", 9.0) == 1
    assert store.tasks(status="failed")[0]["reason"] == "restarted"


ANN = {"name": "Ann Example", "address": "12 Nowhere Lane, 00000 Exampleton", "reference": None,
       "phone": "+1 555 0142", "email": "ann.example@example.com"}


def test_an_orders_customer_survives_a_reopen(store):
    store.add_orders([order("O1", ("A", 1)) | {"customer": ANN}, order("O2", ("A", 1)) | {"customer": None},
                      order("O3", ("B", 1))])
    reopened = Store(store.engine)
    assert {r["id"]: r["customer"] for r in reopened.orders()} == {"O1": ANN, "O2": None, "O3": None}
    assert reopened.orders(ids=["O1"])[0]["lines"] == [{"line_no": 1, "sku": "A", "quantity": 1, "picked": 0}]


def test_a_version_3_database_migrates_to_customers(url):
    """A database of before customers keeps its orders, which read without one."""
    from sqlalchemy import create_engine, insert

    from fleet.service.store import orders as orders_table, schema_version

    engine = create_engine(url)
    with engine.begin() as conn:
        schema_version.create(conn)
        for n, migration in enumerate(MIGRATIONS[:3]):
            migration(conn)
            conn.execute(insert(schema_version).values(version=n + 1, applied_at=0.0))
        conn.execute(insert(orders_table).values(id="OLD", created=0.0, priority=0, status="pending"))
    assert "order_customers" not in inspect(engine).get_table_names()
    engine.dispose()
    s = Store.open(url)
    try:
        assert s.version() == 4 and "order_customers" in inspect(s.engine).get_table_names()
        assert [(r["id"], r["customer"]) for r in s.orders()] == [("OLD", None)]
        s.add_orders([order("NEW", ("A", 1)) | {"customer": ANN}])
        assert s.orders(ids=["NEW"])[0]["customer"] == ANN
    finally:
        s.close()
