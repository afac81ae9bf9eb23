"""Crash recovery: `fleet serve` drives VDA 5050 vehicles on a real Mosquitto broker, is
killed with SIGKILL in the middle of the work (robots driving, shelves on robots, orders
half picked), and is started again on the same database (SQLite, and the machine's
PostgreSQL). The vehicles are the firmware emulator in this test's process, one world
that is the independent witness: after the restart every order, every stock unit and
every shelf position must agree with it, the work must run to its end, and no robot may
have touched another or a shelf."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter

import httpx

from firmware_emulator.serial_front import SerialLines
from firmware_emulator.world import World
from fleet.service.auth import hash_password
from fleet.service.config import load_settings
from fleet.service.store import Store
from fleet.service.warehouse import stock_and_demand
from fleet.service.wiring import load_warehouse_map
from test_service_api import database_url  # noqa: F401 (fixture: SQLite and PostgreSQL)
from test_service_links import Floor, serve, stop, wait_for

VEHICLES = [f"rec-v{n}" for n in range(1, 6)]
FINISHED = {"picked", "packed", "cancelled"}


def world_shelves(world: World) -> dict[str, tuple[int, int] | str]:
    """Where the world says each shelf is: the robot carrying it, or the cell it stands on."""
    out: dict[str, tuple[int, int] | str] = {}
    for shelf_id in world.shelf_ids:
        s = world.shelf(shelf_id)
        if s.carried_by is not None:
            out[shelf_id] = s.carried_by
        else:
            cell = world.map.cell_at(s.x, s.y)
            out[shelf_id] = (cell.x, cell.y)
    return out


def stored_shelves(store: Store) -> dict[str, tuple[int, int] | str]:
    return {shelf_id: row["robot"] if row["robot"] is not None else (row["cell_x"], row["cell_y"])
            for shelf_id, row in store.shelves().items()}


def all_rows(fetch) -> list[dict]:
    rows, after = [], None
    while page := fetch(limit=500, after=after):
        rows += page
        after = page[-1]["id"]
    return rows


def test_kill_9_mid_work_then_restart_recovers_everything(mqtt_url, tmp_path, database_url):  # noqa: F811
    config = tmp_path / "fleet.toml"
    # The robots drive SPEED (4) times faster than wall time; the simulated people work at
    # a quarter of their default pace to match, or picking alone takes most of the test.
    config.write_text(
        f'[map]\nname = "demo"\n'
        f'[broker]\nenabled = true\nurl = "{mqtt_url}"\ninterface = "recovery{uuid.uuid4().hex[:8]}"\n'
        f'[runtime]\ncycle_s = 0.1\n'
        f'[warehouse]\norders_per_hour = 2400\ninbound_notes_per_hour = 0\ngenerated_hours = 0.0015\n'
        f'release_every_s = 3\nseconds_per_pick = 1.5\nseconds_per_unit = 0.25\nseconds_per_stow = 2.5\n'
        f'[database]\nurl = "{database_url}"\n[console]\nport = 0\n'
        f'[[users]]\nname = "ann"\nrole = "viewer"\npassword_hash = "{hash_password("pw")}"\n')
    settings = load_settings(config, environ={})
    scenario = stock_and_demand(settings, load_warehouse_map(settings.map.name))
    initial = scenario.inventory.totals()
    floor = Floor(settings, VEHICLES, SerialLines("pty", []), [])
    store = Store.open(database_url)
    log = tmp_path / "serve.log"
    try:
        floor.start()
        proc, url = serve(config, log)
        try:
            # mid-operation: an order picked, another robot under way with a shelf on top
            def mid_work() -> bool:
                picking = any(line["picked"] for o in store.orders(status="picking", limit=50) for line in o["lines"])
                with floor.lock:
                    carrying = [u.id for u in floor.world.units if u.status().shelf_id is not None]
                return picking and len(carrying) >= 2
            wait_for(mid_work, 40, lambda: f"an order picked and a shelf on a robot; log:\n{log.read_text()[-3000:]}",
                     period=0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        with floor.lock:
            carried_at_kill = {u.id: u.status().shelf_id for u in floor.world.units if u.status().shelf_id}
        assert carried_at_kill, "the kill came when no shelf was on a robot"

        second = tmp_path / "serve-again.log"
        proc, url = serve(config, second)
        try:
            def done() -> bool:
                orders = all_rows(store.orders)
                notes = all_rows(store.notes)
                with floor.lock:
                    idle = all(u.status().shelf_id is None for u in floor.world.units)
                return bool(orders) and all(o["status"] in FINISHED for o in orders) and \
                    all(n["status"] in ("stowed", "cancelled") for n in notes) and idle
            wait_for(done, 90, lambda: f"all work done (orders {Counter(o['status'] for o in all_rows(store.orders))}, "
                                       f"notes {Counter(n['status'] for n in all_rows(store.notes))}); "
                                       f"robots {_robots(url)}; log:\n{second.read_text()[-4000:]}")
            # let the last cycle's bookings land, then compare with the world
            wait_for(lambda: stored_shelves(store) == world_shelves(floor.world), 5,
                     lambda: f"shelves as the world has them: {_diff(stored_shelves(store), world_shelves(floor.world))}")
            alarms = httpx.get(url + "api/alarms", headers=_login(url)).json()
            assert proc.poll() is None, second.read_text()
        finally:
            stop(proc)

        orders = all_rows(store.orders)
        notes = all_rows(store.notes)
        assert orders
        picked, stowed = Counter(), Counter()
        for order in orders:
            for line in order["lines"]:
                picked[line["sku"]] += line["picked"]
                if order["status"] in ("picked", "packed"):
                    assert line["picked"] == line["quantity"], order
        for note in notes:
            for line in note["lines"]:
                stowed[line["sku"]] += line["stowed"]
                assert line["stowed"] == line["quantity"], note
        stock = Counter()
        for contents in store.stock_by_bin().values():
            stock.update(contents)
        expected = Counter({sku: initial.get(sku, 0) - picked[sku] + stowed[sku] for sku in set(initial) | set(stowed)})
        assert +stock == +expected, _diff(dict(stock), dict(expected))
        assert not [a for a in alarms if "finish it by hand" in a["message"] or "reassigned" in a["message"]], alarms
    finally:
        floor.close()
        store.close()
    assert floor.error is None
    assert floor.world.collisions == []


def _robots(url: str) -> list[tuple]:
    rows = httpx.get(url + "api/robots", headers=_login(url)).json()
    tasks = httpx.get(url + "api/tasks", headers=_login(url)).json()
    stations = httpx.get(url + "api/stations", headers=_login(url)).json()
    rows = [("health", httpx.get(url + "api/health").json())] + rows
    return [r if isinstance(r, tuple) else (r["id"], r["state"], r["cell"], r["shelf"], r.get("errand"))
            for r in rows] + \
        [("task", t["kind"], t["robot"], t["shelf"], t["status"]) for t in tasks if t["robot"]
                                        and t["status"] not in ("done", "failed")] + [("station", s["id"], s["terminal"]["robot"], s["terminal"]["shelf"], s["terminal"]["queue"],
                                      s["terminal"]["lit"], s["terminal"]["done"], s["terminal"]["total"]) for s in stations]


def _login(url: str) -> dict[str, str]:
    token = httpx.post(url + "api/login", json={"username": "ann", "password": "pw"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _diff(a: dict, b: dict) -> dict:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
