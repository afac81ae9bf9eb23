"""The HTTP API against a running runtime (emulated robots on the demo map, paced fast):
every endpoint with good and bad input, roles, the audit log, and the live feed."""

import time

import pytest
from fastapi.testclient import TestClient

from fleet.service.app import Service
from fleet.service.auth import hash_password, token_digest
from fleet.service.config import Settings, User
from fleet.service.store import MIGRATIONS

TOKENS = {"viewer": "viewer-token-0123456789", "operator": "operator-token-0123456789",
          "admin": "admin-token-0123456789"}


def service_settings(tmp_path, **overrides) -> Settings:
    settings = Settings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path}/fleet.db"},
        "console": {"port": 0, "update_interval_s": 0.05},
        "runtime": {"speed": 20.0},
        "warehouse": {"orders_per_hour": 1200},  # work for the robots: they move
        **overrides,
    })
    settings.users = [User(name=role, role=role, token_sha256=token_digest(token)) for role, token in TOKENS.items()]
    settings.users.append(User(name="ann", role="operator", password_hash=hash_password("s3cret")))
    return settings


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(service_settings(tmp_path_factory.mktemp("api")))
    svc.runtime.start()
    yield svc
    svc.close()


def as_(role):
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --- session ------------------------------------------------------------------------------------
def test_login_with_password_then_logout(client):
    r = client.post("/api/login", json={"username": "ann", "password": "s3cret"})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/me", headers=auth).json() == {"name": "ann", "role": "operator"}
    assert client.post("/api/logout", headers=auth).status_code == 200
    assert client.get("/api/me", headers=auth).status_code == 401


@pytest.mark.parametrize("body", [{"username": "ann", "password": "wrong"}, {"username": "nobody", "password": "x"},
                                  {"username": "viewer", "password": "x"}])
def test_wrong_login_is_401_without_saying_which_part(client, body):
    r = client.post("/api/login", json=body)
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"


def test_login_body_is_validated(client):
    assert client.post("/api/login", json={"username": ""}).status_code == 422


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_reading_needs_a_known_token(client, headers):
    r = client.get("/api/robots", headers=headers)
    assert r.status_code == 401 and "detail" in r.json()


# --- reading ------------------------------------------------------------------------------------
def test_health_and_metrics_need_no_login(client, service):
    assert wait_for(lambda: client.get("/api/health").json()["cycle"] > 5)
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["robots"] == 12 and health["database"] and health["schema_version"] == len(MIGRATIONS)
    text = client.get("/metrics").text
    assert 'fleet_robots{state="driving"}' in text and "fleet_cycle_seconds_count" in text
    assert 'fleet_messages_total{direction="sent"}' in text


def test_map_has_layout_stations_and_chargers(client, service):
    m = client.get("/api/map", headers=as_("viewer")).json()
    wmap = service.runtime.wmap
    assert (m["width"], m["height"], len(m["layout"])) == (wmap.width, wmap.height, wmap.height)
    assert all(len(row) == wmap.width for row in m["layout"])
    assert {s["id"] for s in m["stations"]} == {s.id for s in wmap.stations}
    assert m["chargers"] and all(m["layout"][c["y"]][c["x"]] == "C" for c in m["chargers"])


def test_robots_move_and_can_be_filtered(client):
    first = {r["id"]: r["cell"] for r in client.get("/api/robots", headers=as_("viewer")).json()}
    assert len(first) == 12
    assert wait_for(lambda: {r["id"]: r["cell"] for r in client.get("/api/robots", headers=as_("viewer")).json()}
                    != first)
    from fleet.service.api import RobotOut
    assert all(RobotOut.model_validate(r) for r in client.get("/api/robots", headers=as_("viewer")).json())
    driving = client.get("/api/robots", params={"state": "driving"}, headers=as_("viewer")).json()
    assert all(r["state"] == "driving" for r in driving)
    assert client.get("/api/robots", params={"max_charge": 101}, headers=as_("viewer")).status_code == 422
    one = client.get("/api/robots/robot-01", headers=as_("viewer")).json()
    assert one["id"] == "robot-01" and one["held"][0] == one["cell"]


def test_unknown_robot_is_404(client):
    r = client.get("/api/robots/robot-99", headers=as_("viewer"))
    assert r.status_code == 404 and r.json()["detail"] == "unknown robot 'robot-99'"


def test_shelves_stations_reservations_blocked(client, service):
    shelves = client.get("/api/shelves", headers=as_("viewer")).json()
    assert len(shelves) > 10 and all(s["home"] is not None for s in shelves)
    one = shelves[0]
    assert client.get(f"/api/shelves/{one['id']}", headers=as_("viewer")).json()["id"] == one["id"]
    assert client.get("/api/shelves/no-such-shelf", headers=as_("viewer")).status_code == 404
    stations = client.get("/api/stations", headers=as_("viewer")).json()
    assert {s["id"] for s in stations} == {s.id for s in service.runtime.wmap.stations}
    held = client.get("/api/reservations", headers=as_("viewer")).json()
    assert set(held) == {f"robot-{k:02d}" for k in range(1, 13)}
    assert list(client.get("/api/reservations", params={"robot": "robot-03"}, headers=as_("viewer")).json()) == ["robot-03"]
    assert client.get("/api/reservations", params={"robot": "robot-77"}, headers=as_("viewer")).status_code == 404
    assert isinstance(client.get("/api/blocked-cells", headers=as_("viewer")).json(), list)


def test_alarms_and_audit_limits_are_validated(client):
    assert client.get("/api/alarms", params={"limit": 0}, headers=as_("viewer")).status_code == 422
    assert client.get("/api/audit", params={"limit": 5000}, headers=as_("viewer")).status_code == 422
    assert client.get("/api/audit", params={"before": "x"}, headers=as_("viewer")).status_code == 422


# --- operator actions ------------------------------------------------------------------------------
MUTATIONS = ["/api/robots/robot-01/pause", "/api/robots/robot-01/resume", "/api/robots/robot-01/out-of-service",
             "/api/robots/robot-01/in-service", "/api/fleet/pause", "/api/fleet/resume", "/api/fleet/emergency-stop",
             "/api/fleet/reset", "/api/cells/0/0/block", "/api/cells/0/0/unblock", "/api/alarms/1/acknowledge"]


@pytest.mark.parametrize("path", MUTATIONS)
def test_a_viewer_changes_nothing(client, path):
    before = client.get("/api/audit", headers=as_("viewer")).json()
    r = client.post(path, headers=as_("viewer"))
    assert r.status_code == 403 and "needs the operator role" in r.json()["detail"]
    assert client.get("/api/audit", headers=as_("viewer")).json() == before
    assert client.post(path).status_code == 401


def test_pause_stops_a_robot_and_resume_lets_it_go_on(client, service):
    def cell():
        return client.get("/api/robots/robot-02", headers=as_("viewer")).json()["cell"]
    r = client.post("/api/robots/robot-02/pause", headers=as_("operator"))
    assert r.status_code == 200
    audit_id = r.json()["audit_id"]
    assert client.get("/api/robots/robot-02", headers=as_("viewer")).json()["state"] == "paused"
    time.sleep(0.5)  # it brakes to the next cell centre at most
    stopped_at = cell()
    time.sleep(1.0)  # 20 fleet seconds at speed 20
    assert cell() == stopped_at
    entry = client.get("/api/audit", headers=as_("viewer")).json()[0]
    assert (entry["id"], entry["user"], entry["role"], entry["action"], entry["target"]) == \
        (audit_id, "operator", "operator", "pause", "robot-02")
    assert client.post("/api/robots/robot-02/resume", headers=as_("operator")).status_code == 200
    assert wait_for(lambda: cell() != stopped_at)


def test_actions_on_unknown_robots_are_404_and_not_audited(client):
    before = client.get("/api/audit", headers=as_("viewer")).json()
    for verb in ("pause", "resume", "out-of-service", "in-service"):
        r = client.post(f"/api/robots/ghost/{verb}", headers=as_("operator"))
        assert r.status_code == 404 and r.json()["detail"] == "unknown robot 'ghost'"
    assert client.get("/api/audit", headers=as_("viewer")).json() == before


def test_block_and_unblock_a_cell(client, service):
    wmap = service.runtime.wmap
    from maps.model import CellKind
    aisle = wmap.cells_of(CellKind.AISLE)[0]
    r = client.post(f"/api/cells/{aisle.x}/{aisle.y}/block", headers=as_("operator"))
    assert r.status_code == 200
    assert {"x": aisle.x, "y": aisle.y} in client.get("/api/blocked-cells", headers=as_("viewer")).json()
    again = client.post(f"/api/cells/{aisle.x}/{aisle.y}/block", headers=as_("operator"))
    assert again.status_code == 409 and "blocked already" in again.json()["detail"]
    assert client.post(f"/api/cells/{aisle.x}/{aisle.y}/unblock", headers=as_("operator")).status_code == 200
    assert client.get("/api/blocked-cells", headers=as_("viewer")).json() == []
    r = client.post(f"/api/cells/{aisle.x}/{aisle.y}/unblock", headers=as_("operator"))
    assert r.status_code == 409 and "is not blocked" in r.json()["detail"]


@pytest.mark.parametrize("x, y, message", [(999, 0, "outside the map"), (-1, 2, "outside the map"),
                                           (0, 99999, "outside the map")])
def test_blocking_a_cell_off_the_map_is_400(client, x, y, message):
    r = client.post(f"/api/cells/{x}/{y}/block", headers=as_("operator"))
    assert r.status_code == 400 and message in r.json()["detail"]


def test_blocking_an_untraversable_cell_is_400(client, service):
    from maps.model import CellKind
    walls = service.runtime.wmap.cells_of(CellKind.BLOCKED)
    if not walls:
        pytest.fail("the demo map has no blocked cell to test with")
    r = client.post(f"/api/cells/{walls[0].x}/{walls[0].y}/block", headers=as_("operator"))
    assert r.status_code == 400 and "not traversable" in r.json()["detail"]


def test_emergency_stop_halts_everyone_and_reset_carries_on(client):
    def cells():
        return {r["id"]: r["cell"] for r in client.get("/api/robots", headers=as_("viewer")).json()}
    assert client.post("/api/fleet/emergency-stop", headers=as_("operator")).status_code == 200
    assert wait_for(lambda: all(r["state"] == "error" for r in client.get("/api/robots", headers=as_("viewer")).json()))
    time.sleep(0.3)
    stopped = cells()
    time.sleep(0.7)
    assert cells() == stopped
    alarms = client.get("/api/alarms", params={"active": True}, headers=as_("viewer")).json()
    assert any("emergency_stop" in a["message"] for a in alarms)
    alarm_id = alarms[0]["id"]
    assert client.post(f"/api/alarms/{alarm_id}/acknowledge", headers=as_("operator")).status_code == 200
    r = client.post(f"/api/alarms/{alarm_id}/acknowledge", headers=as_("operator"))
    assert r.status_code == 409 and "acknowledged by operator already" in r.json()["detail"]
    assert client.post("/api/alarms/424242/acknowledge", headers=as_("operator")).status_code == 404
    assert client.post("/api/fleet/reset", headers=as_("operator")).status_code == 200
    assert wait_for(lambda: cells() != stopped)
    # cleared with their cause; they stay listed as active until someone acknowledges them
    assert wait_for(lambda: all(a["cleared_at"] is not None for a in
                                client.get("/api/alarms", params={"active": True}, headers=as_("viewer")).json()))
    assert all(a["acknowledged_by"] is None for a in
               client.get("/api/alarms", params={"active": True}, headers=as_("viewer")).json())


def test_pause_all_then_a_single_resume_is_refused(client):
    assert client.post("/api/fleet/pause", headers=as_("operator")).status_code == 200
    r = client.post("/api/robots/robot-01/resume", headers=as_("operator"))
    assert r.status_code == 409 and "resume all first" in r.json()["detail"]
    assert client.post("/api/fleet/resume", headers=as_("admin")).status_code == 200
    assert {r["state"] for r in client.get("/api/robots", headers=as_("viewer")).json()}.isdisjoint({"paused"})


def test_out_of_service_is_durable_and_shown(client, service):
    assert client.post("/api/robots/robot-05/out-of-service", headers=as_("operator")).status_code == 200
    assert client.get("/api/robots/robot-05", headers=as_("viewer")).json()["state"] == "out_of_service"
    assert service.store.known_robots()["robot-05"]["out_of_service"] is True
    assert client.post("/api/robots/robot-05/in-service", headers=as_("operator")).status_code == 200
    assert service.store.known_robots()["robot-05"]["out_of_service"] is False


# --- live feed -----------------------------------------------------------------------------------
def test_live_feed_sends_everything_once_then_only_changes(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"token": TOKENS["viewer"]})
        first = ws.receive_json()
        assert len(first["robots"]) == 12 and "flags" in first and "blocked" in first and first["shelves"]
        ws.send_json({"watch": "robot-03"})
        later = [ws.receive_json() for _ in range(6)]
        assert any(m.get("robots") for m in later)
        assert all("flags" not in m for m in later)  # unchanged: not sent again
        watched = [m["held"] for m in later if "held" in m]
        assert watched and all(set(h) == {"robot-03"} for h in watched)


def test_live_feed_is_rate_limited(client, service):
    interval = 0.05  # console.update_interval_s of this service
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"token": TOKENS["viewer"]})
        ws.receive_json()
        started, count = time.monotonic(), 0
        while time.monotonic() - started < 1.0:
            ws.receive_json()
            count += 1
        elapsed = time.monotonic() - started
    assert 1 <= count <= elapsed / interval + 2


def test_live_feed_refuses_a_bad_token(client):
    from starlette.websockets import WebSocketDisconnect
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"token": "wrong"})
        with pytest.raises(WebSocketDisconnect) as err:
            ws.receive_json()
        assert err.value.code == 4401


def test_console_is_served(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "console.js" in page.text
    assert client.get("/console/console.js").status_code == 200


# --- across a restart, on both databases ------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/restart.db"
        return
    import uuid

    import psycopg
    schema = f"fleet_test_{uuid.uuid4().hex[:12]}"
    dsn = "host=127.0.0.1 port=5432 dbname=test user=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_service_keeps_its_facts_across_a_restart(tmp_path, database_url):
    settings = service_settings(tmp_path, database={"url": database_url}, robots={"emulated": 4})
    first = Service(settings)
    first.runtime.start()
    try:
        with TestClient(first.app) as c:
            assert c.post("/api/robots/robot-2/out-of-service", headers=as_("operator")).status_code == 200
            assert c.post("/api/robots/robot-3/pause", headers=as_("operator")).status_code == 200
            shelves = {s["id"]: s["home"] for s in c.get("/api/shelves", headers=as_("viewer")).json()}
    finally:
        first.close()
    second = Service(settings)
    second.runtime.start()
    try:
        with TestClient(second.app) as c:
            assert c.get("/api/robots/robot-2", headers=as_("viewer")).json()["state"] == "out_of_service"
            assert [(e["action"], e["target"]) for e in c.get("/api/audit", headers=as_("viewer")).json()] == \
                [("pause", "robot-3"), ("out_of_service", "robot-2")]
            assert {s["id"]: s["home"] for s in c.get("/api/shelves", headers=as_("viewer")).json()} == shelves
            assert c.get("/api/health").json()["schema_version"] == len(MIGRATIONS)
    finally:
        second.close()
