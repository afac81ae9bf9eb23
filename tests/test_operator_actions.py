"""The operator's "send a robot to charge" and "move a shelf" in the scheduler, on the
alcove floor with emulated robots: what they do, and each reason they are refused."""

import pytest
from fastapi.testclient import TestClient

from fleet.domain import Order, OrderLine
from fleet.domain.order_box import OrderBox, choose_box_type
from fleet.domain.task import TaskKind, TaskStatus
from fleet.scheduler.charging import BatteryPolicy
from fleet.scheduler.workflows import SchedulerConfig, Stage
from fleet.service.app import Service
from maps.model import Cell, CellKind
from scheduler_kit import Fleet
from test_service_api import as_, database_url, service_settings, wait_for  # noqa: F401 (fixture)
from test_service_warehouse_api import _database

OPERATOR = as_("operator")
VIEWER = as_("viewer")

#: A robot at 50 % is far above `low`: it charges only because it was sent, and is full soon.
POLICY = BatteryPolicy(critical=0.1, low=0.3, resume=0.4, full=0.505)
FREE = Cell(11, 8)  # a storage cell no shelf calls home when the fleet has 10 shelves


def stage_log(fleet: Fleet, robot_id: str) -> tuple[list[Stage | None], callable]:
    """The robot's stages in order (None: no job), and the watcher that records them."""
    stages: list[Stage | None] = []

    def watch(now: float) -> None:
        job = fleet.scheduler.jobs.get(robot_id)
        stage = job.stage if job is not None else None
        if not stages or stages[-1] is not stage:
            stages.append(stage)
    return stages, watch


# --- send a robot to charge ----------------------------------------------------------------
def test_a_free_robot_goes_to_the_nearest_charger_at_once_and_charges_until_full():
    fleet = Fleet({"r1": Cell(10, 5)}, config=SchedulerConfig(battery=POLICY), charge=0.5)
    sched = fleet.scheduler
    fleet.run_until(lambda: fleet.clock.now() >= 30, 60)
    assert "r1" not in sched.jobs  # idle above `low`: it would not charge by itself
    assert sched.send_to_charge("r1", fleet.clock.now()) == "charge"
    assert sched.chargers.of("r1") == Cell(12, 3)  # the nearer of the two
    stages, watch = stage_log(fleet, "r1")
    fleet.run_until(lambda: stages[-1:] == [None], 900, each=watch)
    assert stages == [Stage.CHARGE, Stage.CHARGING, Stage.UNPLUG, None]
    assert fleet.motion.robots["r1"].charge >= POLICY.full
    assert sched.sent_to_charge == set() and sched.chargers.holder == {}
    assert fleet.world.collisions == []


def test_a_busy_robot_finishes_its_job_then_charges_and_takes_no_work_until_full():
    fleet = Fleet({"r1": Cell(2, 3)}, stock={"S1": {"A": 5}}, order_shelves=2,
                  config=SchedulerConfig(battery=POLICY), charge=0.5)
    sched = fleet.scheduler
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
    fleet.run_until(lambda: "r1" in sched.jobs and sched.jobs["r1"].stage is Stage.FETCH, 120)
    assert sched.send_to_charge("r1", fleet.clock.now()) == "when_free"
    stages, watch = stage_log(fleet, "r1")
    with pytest.raises(ValueError, match="sent to charge already"):
        sched.send_to_charge("r1", fleet.clock.now())
    unplugged_at: list[float] = []

    def also(now: float) -> None:
        watch(now)
        fleet.operate(now)
        if stages[-1] is Stage.CHARGING and "O2" not in sched.orders:  # work waits: it stays on
            sched.receive_order(Order(id="O2", lines=(OrderLine("A", 1),), created=now))
        if stages[-1] is Stage.UNPLUG and not unplugged_at:
            unplugged_at.append(fleet.motion.robots["r1"].charge)
    fleet.run_until(lambda: bool(unplugged_at), 1800, each=also)
    first_charge = stages.index(Stage.CHARGE)
    assert Stage.PRESENT in stages[:first_charge] and stages[first_charge - 1] is Stage.RETURN
    assert stages[first_charge:] == [Stage.CHARGE, Stage.CHARGING, Stage.UNPLUG]  # no work before it is full
    assert "O1" in sched.picked_at and sched.shelves["S1"].at_home and "O2" in sched.orders
    assert unplugged_at[0] >= POLICY.full
    fleet.run_until(lambda: "O2" in sched.picked_at, 1800, each=fleet.operate)  # then it works again
    assert fleet.world.collisions == []


def test_a_robot_sent_while_the_chargers_are_taken_waits_for_one():
    fleet = Fleet({"r1": Cell(12, 4), "r2": Cell(14, 4), "r3": Cell(2, 3)}, config=SchedulerConfig(battery=POLICY),
                  charge=0.5)
    sched = fleet.scheduler
    assert [sched.send_to_charge(r, 0.0) for r in ("r1", "r2", "r3")] == ["charge", "charge", "wait_charger"]
    assert sched.chargers.waiting == ["r3"]
    charged = set()

    def watch(now: float) -> None:
        charged.update(r for r in fleet.world.robots if fleet.world.charging[fleet.world.robots[r].index])
    fleet.run_until(lambda: charged == {"r1", "r2", "r3"} and not sched.jobs, 1800, each=watch)
    assert fleet.world.collisions == []


def test_send_to_charge_is_refused_with_the_reason():
    fleet = Fleet({"r1": Cell(10, 5), "r2": Cell(2, 5)}, config=SchedulerConfig(battery=POLICY), charge=0.5)
    sched = fleet.scheduler
    with pytest.raises(KeyError):
        sched.send_to_charge("r9", 0.0)
    sched.take_out_of_service("r2", 0.0)
    with pytest.raises(ValueError, match="robot r2 is out of service"):
        sched.send_to_charge("r2", 0.0)
    fleet.motion.robots["r2"].out_of_service = False
    fleet.motion.robots["r2"].online = False
    with pytest.raises(ValueError, match="robot r2 is offline"):
        sched.send_to_charge("r2", 0.0)
    sched.send_to_charge("r1", 0.0)
    with pytest.raises(ValueError, match="robot r1 is on its way to a charger already"):
        sched.send_to_charge("r1", 0.0)
    fleet.run_until(lambda: sched.jobs["r1"].stage is Stage.CHARGING, 300)
    with pytest.raises(ValueError, match="robot r1 is charging already"):
        sched.send_to_charge("r1", fleet.clock.now())
    # a robot that goes down after it was sent forgets the order
    fleet.motion.robots["r2"].online = True
    fleet.run_until(lambda: "r2" not in sched.down, fleet.clock.now() + 5)
    fleet.motion.robots["r2"].paused = True
    assert sched.send_to_charge("r2", fleet.clock.now()) == "when_free"  # paused: it goes once resumed
    fleet.motion.robots["r2"].out_of_service = True
    fleet.run_until(lambda: "r2" in sched.down, fleet.clock.now() + 5)
    assert "r2" not in sched.sent_to_charge


def test_a_floor_without_chargers_refuses_to_charge():
    fleet = Fleet({"r1": Cell(10, 5)})
    fleet.scheduler.chargers.cells = ()
    with pytest.raises(ValueError, match="no charger"):
        fleet.scheduler.send_to_charge("r1", 0.0)


# --- move a shelf ---------------------------------------------------------------------------
def test_a_shelf_is_moved_to_a_free_storage_cell_which_becomes_its_home():
    fleet = Fleet({"r1": Cell(2, 3), "r2": Cell(14, 6)}, stock={"S1": {"A": 5, "B": 3}}, shelves=10)
    sched = fleet.scheduler
    shelf = sched.shelves["S1"]
    before = (shelf.stock(), fleet.inventory.totals())
    task = sched.move_shelf("S1", FREE, 0.0)
    assert (task.kind, task.target, task.shelf) == (TaskKind.MOVE_SHELF, FREE, "S1")
    assert shelf.home == FREE and sched.fetches["S1"] is task
    fleet.run_until(lambda: task.status is TaskStatus.DONE, 600)
    assert task.robot == "r1"  # the free robot nearest the shelf
    assert (shelf.cell, shelf.home, shelf.robot, shelf.at_home) == (FREE, FREE, None, True)
    assert (shelf.stock(), fleet.inventory.totals()) == before
    assert fleet.world.stored_shelf_at(FREE) == "S1" and fleet.world.stored_shelf_at(Cell(1, 1)) is None
    assert not sched.fetches and not sched.jobs and not sched.flagged
    # called to a port, it is fetched from its new home and brought back there
    sched._route("S1", "pick-1", fleet.clock.now())
    fetch = sched.fetches["S1"]
    fleet.run_until(lambda: fetch.status is TaskStatus.DONE, fleet.clock.now() + 600)
    assert shelf.cell == FREE and fleet.world.stored_shelf_at(FREE) == "S1"
    assert fleet.world.collisions == []


def test_a_move_cut_short_by_a_restart_is_finished():
    """The store holds the new home and the old cell: the scheduler takes the shelf home."""
    fleet = Fleet({"r1": Cell(2, 3)}, shelves=10)
    sched = fleet.scheduler
    sched.restore_shelf("S2", Cell(3, 1), home=FREE)
    sched.resume_moves(0.0)
    task = sched.fetches["S2"]
    assert (task.kind, task.target) == (TaskKind.MOVE_SHELF, FREE)
    fleet.run_until(lambda: task.status is TaskStatus.DONE, 600)
    assert sched.shelves["S2"].at_home and fleet.world.stored_shelf_at(FREE) == "S2"


def test_move_shelf_is_refused_with_the_reason():
    fleet = Fleet({"r1": Cell(2, 3)}, stock={"S1": {"A": 5}}, order_shelves=1, shelves=10)
    sched = fleet.scheduler
    with pytest.raises(KeyError):
        sched.move_shelf("S99", FREE, 0.0)
    for cell, reason in [(Cell(40, 1), r"outside the map \(17 x 10\)"), (Cell(-1, 1), "outside the map"),
                         (Cell(2, 4), "is aisle, not a storage cell"), (Cell(12, 3), "is charger, not a storage"),
                         (Cell(3, 1), "shelf S2 stands on"), (Cell(1, 1), "stands on .* already")]:
        with pytest.raises(ValueError, match=reason):
            sched.move_shelf("S1", cell, 0.0)
    task = sched.move_shelf("S3", FREE, 0.0)
    with pytest.raises(ValueError, match=r"shelf S3 has its home on \(11, 8\)"):
        sched.move_shelf("S4", FREE, 0.0)
    with pytest.raises(ValueError, match="shelf S3 is booked"):
        sched.move_shelf("S3", Cell(13, 8), 0.0)
    fleet.run_until(lambda: sched.shelves["S3"].carried, 300)
    with pytest.raises(ValueError, match="shelf S3 is on robot r1"):
        sched.move_shelf("S3", Cell(13, 8), fleet.clock.now())
    fleet.run_until(lambda: task.status is TaskStatus.DONE, 600)
    sched.flagged["S5"] = "lift by r1 failed: no shelf"
    with pytest.raises(ValueError, match="shelf S5 is flagged"):
        sched.move_shelf("S5", Cell(13, 8), fleet.clock.now())
    sched.receive_order(Order(id="O1", lines=(OrderLine("A", 1),), created=0.0))
    order_shelf = sched.shelves["OS1"]
    order_shelf.place(OrderBox.for_order(sched.orders["O1"], choose_box_type(1.0), "BOX-O1"))
    with pytest.raises(ValueError, match=f"order shelf {order_shelf.id} holds order boxes"):
        sched.move_shelf(order_shelf.id, Cell(13, 8), fleet.clock.now())
    sched._route("S6", "pick-1", fleet.clock.now())
    with pytest.raises(ValueError, match="shelf S6 is booked"):
        sched.move_shelf("S6", Cell(13, 8), fleet.clock.now())
    # nothing refused changed a home
    assert all(s.home == s.cell for s in sched.shelves.values())
    assert {c for c in fleet.map.cells_of(CellKind.STORAGE)} >= {s.home for s in sched.shelves.values()}


# --- the HTTP API, against a running service --------------------------------------------------
SPARE = 2  # storage cells the service's floor leaves free


def service_with_spare_cells(folder, url, **robots):
    return Service(service_settings(folder, database={"url": url}, robots=robots, warehouse={
        "simulated_operators": False, "orders_per_hour": 0, "spare_storage_cells": SPARE}))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("operator_actions")
    with _database(request.param, folder) as url:
        svc = service_with_spare_cells(folder, url)
        svc.runtime.start()
        assert wait_for(lambda: svc.runtime.snapshot().cycle > 0, timeout=90)
        yield svc
        svc.close()


def free_cells(service) -> list[Cell]:
    sched = service.runtime.work.scheduler
    homes = service.runtime.call(lambda: {s.home for s in sched.shelves.values()})
    return [c for c in sched.map.cells_of(CellKind.STORAGE) if c not in homes]


def audited(service, action: str) -> list:
    return [e for e in service.store.audit_log(1000) if e.action == action]


def test_send_a_robot_to_charge_over_the_api(client, service):
    chargers = {(c["x"], c["y"]) for c in client.get("/api/map", headers=VIEWER).json()["chargers"]}
    r = client.post("/api/robots/robot-01/charge", headers=OPERATOR)
    assert r.status_code == 200 and r.json()["detail"]["result"]["stage"] in ("charge", "wait_charger"), r.text
    entry = audited(service, "charge")[0]
    assert (entry.id, entry.user, entry.role, entry.target) == (r.json()["audit_id"], "operator", "operator", "robot-01")
    r = client.post("/api/robots/robot-01/charge", headers=OPERATOR)
    assert r.status_code == 409 and "already" in r.json()["detail"], r.text
    assert wait_for(lambda: tuple(client.get("/api/robots/robot-01", headers=VIEWER).json()["cell"].values())
                    in chargers, timeout=60)


def test_send_to_charge_refusals(client, service):
    before = len(audited(service, "charge"))
    assert client.post("/api/robots/no-such-robot/charge", headers=OPERATOR).status_code == 404
    assert client.post("/api/robots/robot-02/charge", headers=VIEWER).status_code == 403
    assert client.post("/api/robots/robot-02/charge").status_code == 401
    assert len(audited(service, "charge")) == before  # refused before the audit
    assert client.post("/api/robots/robot-02/out-of-service", headers=OPERATOR).status_code == 200
    try:
        r = client.post("/api/robots/robot-02/charge", headers=OPERATOR)
        assert r.status_code == 409 and r.json()["detail"] == "robot robot-02 is out of service", r.text
    finally:
        assert client.post("/api/robots/robot-02/in-service", headers=OPERATOR).status_code == 200


def test_move_a_shelf_over_the_api(client, service):
    target = free_cells(service)[0]
    assert len(free_cells(service)) == SPARE
    shelf_id = "SH0001"
    stock = {b: c for b, c in service.store.stock_by_bin().items() if b.startswith(shelf_id + "-")}
    r = client.post(f"/api/shelves/{shelf_id}/move", json={"x": target.x, "y": target.y}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    task_id = r.json()["detail"]["result"]["task"]
    entry = audited(service, "move_shelf")[0]
    assert (entry.id, entry.user, entry.target, entry.detail) == \
        (r.json()["audit_id"], "operator", shelf_id, {"x": target.x, "y": target.y})
    shelf = client.get(f"/api/shelves/{shelf_id}", headers=VIEWER).json()
    assert shelf["home"] == {"x": target.x, "y": target.y}  # committed before the robot moves
    task = next(t for t in client.get("/api/tasks", headers=VIEWER).json() if t["id"] == task_id)
    assert (task["kind"], task["target"], task["shelf"]) == ("move_shelf", f"{target.x},{target.y}", shelf_id)
    assert wait_for(lambda: client.get(f"/api/shelves/{shelf_id}", headers=VIEWER).json()["cell"]
                    == {"x": target.x, "y": target.y}, timeout=90)
    assert wait_for(lambda: service.store.tasks(status="done", limit=1000) and
                    any(t["id"] == task_id for t in service.store.tasks(status="done", limit=1000)), timeout=10)
    row = service.store.shelves()[shelf_id]
    assert (row["home_x"], row["home_y"], row["cell_x"], row["cell_y"], row["robot"]) == (*target, *target, None)
    assert {b: c for b, c in service.store.stock_by_bin().items() if b.startswith(shelf_id + "-")} == stock


@pytest.mark.parametrize("shelf, body, status, message", [
    ("NO-SUCH-SHELF", {"x": 1, "y": 1}, 404, "unknown shelf 'NO-SUCH-SHELF'"),
    ("SH0002", {"x": 999, "y": 1}, 422, "outside the map (30 x 20)"),
    ("SH0002", {"x": -1, "y": 0}, 422, "outside the map"),
    ("SH0002", {"x": 0, "y": 0}, 422, "not a storage cell"),
    ("SH0002", {"x": 1}, 422, None),
    ("SH0002", {"x": "a", "y": 2}, 422, None),
])
def test_move_shelf_bad_input(client, service, shelf, body, status, message):
    before = len(audited(service, "move_shelf"))
    r = client.post(f"/api/shelves/{shelf}/move", json=body, headers=OPERATOR)
    assert r.status_code == status, r.text
    if message is not None:
        assert message in r.json()["detail"]
    assert len(audited(service, "move_shelf")) == before


def test_move_shelf_conflicts_and_roles(client, service):
    sched = service.runtime.work.scheduler
    homes = service.runtime.call(lambda: {s.id: s.home for s in sched.shelves.values()})
    other = homes["SH0003"]
    r = client.post("/api/shelves/SH0002/move", json={"x": other.x, "y": other.y}, headers=OPERATOR)
    assert r.status_code == 409 and "shelf SH0003 stands on" in r.json()["detail"], r.text
    own = homes["SH0002"]
    r = client.post("/api/shelves/SH0002/move", json={"x": own.x, "y": own.y}, headers=OPERATOR)
    assert r.status_code == 409 and "already" in r.json()["detail"], r.text
    free = free_cells(service)[-1]
    assert client.post("/api/shelves/SH0002/move", json={"x": free.x, "y": free.y}, headers=VIEWER).status_code == 403
    assert client.post("/api/shelves/SH0002/move", json={"x": free.x, "y": free.y}).status_code == 401
    assert service.store.shelves()["SH0002"]["home_x"] == own.x


def test_the_operator_actions_are_in_the_openapi_docs(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/robots/{robot_id}/charge"]
    move = paths["/api/shelves/{shelf_id}/move"]["post"]
    assert move["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Position")


def test_a_moved_shelf_stays_moved_after_a_restart(tmp_path, database_url):
    first = service_with_spare_cells(tmp_path, database_url, emulated=4)
    first.runtime.start()
    try:
        target = free_cells(first)[0]
        with TestClient(first.app) as c:
            r = c.post("/api/shelves/SH0005/move", json={"x": target.x, "y": target.y}, headers=OPERATOR)
            assert r.status_code == 200, r.text
            assert wait_for(lambda: c.get("/api/shelves/SH0005", headers=VIEWER).json()["cell"]
                            == {"x": target.x, "y": target.y}, timeout=90)
    finally:
        first.close()
    second = service_with_spare_cells(tmp_path, database_url, emulated=4)
    second.runtime.start()
    try:
        sched = second.runtime.work.scheduler
        shelf = second.runtime.call(lambda: sched.shelves["SH0005"])
        assert (shelf.home, shelf.cell, shelf.robot) == (target, target, None)
        assert second.runtime.snapshot().shelves["SH0005"] == tuple(target)  # the world agrees
        assert target not in free_cells(second)
        with TestClient(second.app) as c:
            assert c.get("/api/shelves/SH0005", headers=VIEWER).json()["home"] == {"x": target.x, "y": target.y}
    finally:
        second.close()
