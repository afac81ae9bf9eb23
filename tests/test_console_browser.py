"""The console in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
log in, robots move on the live map, pause a robot and see it stop, work a pick at a
station terminal until the shelf leaves, and a viewer can do none of it. Screenshots land
in the test's tmp dir (and the docs' in docs/img/console.png and docs/img/terminal.png
when FLEET_SCREENSHOT is set)."""

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from fleet.service.app import Service
from fleet.service.auth import hash_password
from fleet.service.config import Settings, User
from maps.model import CellKind

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
README_SHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "console.png"
TERMINAL_SHOT = README_SHOT.with_name("terminal.png")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = Settings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path_factory.mktemp('console')}/fleet.db"},
        "console": {"port": 0, "update_interval_s": 0.1},
        "robots": {"emulated": 24},
        "runtime": {"speed": 8.0},
        # orders keep the robots busy; simulated people work every port nobody took over
        "warehouse": {"orders_per_hour": 1500, "spare_storage_cells": 2},
    })
    settings.users = [User(name="ann", role="operator", password_hash=hash_password("ann-pw")),
                      User(name="vic", role="viewer", password_hash=hash_password("vic-pw"))]
    svc = Service(settings)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors in the console: {errors}"


def log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    page.wait_for_function("window.fleetConsole.robots.size === 24")


def robot_cells(page: Page) -> dict:
    return page.evaluate("Object.fromEntries([...window.fleetConsole.robots.values()].map(r => [r.id, [r.x, r.y, r.state]]))")


def test_wrong_password_is_refused(page, service):
    page.goto(service.url)
    page.fill("#login-user", "ann")
    page.fill("#login-password", "nope")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    expect(page.locator("#app")).to_be_hidden()


def test_operator_sees_robots_move_and_pauses_one(page, service, tmp_path):
    log_in(page, service.url, "ann", "ann-pw")
    expect(page.locator("#who")).to_have_text("ann (operator)")
    before = robot_cells(page)
    page.wait_for_function("b => [...window.fleetConsole.robots.values()].some(r => r.x !== b[r.id][0] || r.y !== b[r.id][1])",
                           arg=before)
    # the canvas shows each robot in its state's colour at its cell
    page.wait_for_timeout(400)
    drawn = page.evaluate("""(() => {
        const s = window.fleetConsole, c = document.getElementById('map'), g = c.getContext('2d');
        const dpr = window.devicePixelRatio || 1, hits = [];
        for (const r of s.robots.values()) {
            if (r.x !== r.fx || r.y !== r.fy) continue;  // gliding: skip
            const px = (s.view.ox + (r.x + 0.5 - 0.25) * s.view.scale) * dpr, py = (s.view.oy + (r.y + 0.5) * s.view.scale) * dpr;
            hits.push(Array.from(g.getImageData(Math.round(px), Math.round(py), 1, 1).data.slice(0, 3)).join(','));
        }
        return hits;
    })()""")
    state_colours = {"107,114,128", "37,99,235", "124,58,237", "22,163,74"}  # idle, driving, acting, charging
    assert drawn and sum(h in state_colours for h in drawn) >= len(drawn) // 2, drawn
    page.screenshot(path=str(tmp_path / "console-moving.png"))

    page.fill("#robot-filter", "robot-07")
    page.locator("#robots tbody tr[data-id='robot-07']").click()
    expect(page.locator("#sel-id")).to_have_text("robot-07")
    page.click("#sel-pause")
    page.wait_for_function("window.fleetConsole.robots.get('robot-07').state === 'paused'")
    expect(page.locator("dd[data-fact='state']")).to_have_text("paused")
    page.wait_for_timeout(800)  # braking to the next cell centre
    stopped = robot_cells(page)["robot-07"]
    page.wait_for_timeout(2000)  # 16 fleet seconds
    assert robot_cells(page)["robot-07"] == stopped
    page.wait_for_function("(window.fleetConsole.held.get('robot-07') || []).length >= 1")  # its reserved cells shown
    page.screenshot(path=str(tmp_path / "console-paused.png"))
    if os.environ.get("FLEET_SCREENSHOT"):
        page.fill("#robot-filter", "")
        page.wait_for_timeout(600)
        page.screenshot(path=str(README_SHOT))
    audit = service.store.audit_log(5)
    assert (audit[0].user, audit[0].action, audit[0].target) == ("ann", "pause", "robot-07")
    page.click("#sel-resume")
    page.wait_for_function("window.fleetConsole.robots.get('robot-07').state !== 'paused'")


def test_a_viewer_cannot_pause(page, service):
    log_in(page, service.url, "vic", "vic-pw")
    expect(page.locator("#who")).to_have_text("vic (viewer)")
    for button in ("#pause-all", "#resume-all", "#estop", "#reset"):
        expect(page.locator(button)).to_be_hidden()
    page.locator("#robots tbody tr[data-id='robot-03']").click()
    expect(page.locator("#sel-id")).to_have_text("robot-03")
    expect(page.locator("#sel-pause")).to_be_hidden()
    expect(page.locator("#sel-charge")).to_be_hidden()
    before = len(service.store.audit_log(1000))
    # even if the page is tampered with, the server says no
    status = page.evaluate("""fetch('/api/robots/robot-03/pause', {method: 'POST',
        headers: {Authorization: 'Bearer ' + window.fleetConsole.token}}).then(r => r.status)""")
    assert status == 403
    time.sleep(0.3)
    assert page.evaluate("window.fleetConsole.robots.get('robot-03').state") != "paused"
    assert len(service.store.audit_log(1000)) == before


def open_terminal(page: Page, url: str, station: str, user: str, password: str) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})  # a tablet, landscape
    page.goto(f"{url}console/terminal.html?station={station}")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    page.wait_for_function(f"window.fleetTerminal.view && window.fleetTerminal.view.id === '{station}'")


def test_operator_works_a_pick_until_the_shelf_leaves(page, service, tmp_path):
    open_terminal(page, service.url, "pick-1", "ann", "ann-pw")
    expect(page.locator("#who")).to_have_text("ann (operator)")
    page.click("#start")
    expect(page.locator("#worked-by")).to_have_text("worked here")
    # the shelf at the port (the simulated operator may have begun it: the rest is ours), or the next
    page.wait_for_function("window.fleetTerminal.view.lit !== null", timeout=60000)
    view = page.evaluate("window.fleetTerminal.view")
    shelf, done, total = view["shelf"], view["done"], view["total"]
    expect(page.locator("#pick-bin")).to_have_text(view["lit"]["bin"])
    expect(page.locator(f"#grid div.lit[data-bin='{view['lit']['bin']}']")).to_be_visible()
    page.screenshot(path=str(tmp_path / "terminal-pick.png"))
    if os.environ.get("FLEET_SCREENSHOT"):
        page.screenshot(path=str(TERMINAL_SHOT))
    picked = []
    for n in range(done, total):
        lit = page.evaluate("window.fleetTerminal.view.lit")
        expect(page.locator("#pick-qty")).to_have_text(str(lit["quantity"]))
        picked.append((lit["order"], lit["sku"], lit["quantity"]))
        page.click("#confirm")
        page.wait_for_function("([s, d]) => window.fleetTerminal.view.shelf !== s || window.fleetTerminal.view.done >= d",
                               arg=[shelf, n + 1])
    # the shelf left the port: the terminal shows the next one, or none
    page.wait_for_function("s => window.fleetTerminal.view.shelf !== s", arg=shelf)
    audit = [e for e in service.store.audit_log(200) if e.user == "ann" and e.action == "pick_confirm"]
    assert len(audit) == total - done and all(e.target == "pick-1" for e in audit)
    # what was confirmed is booked: the order lines count the units
    for order_id, sku, quantity in picked:
        lines = service.store.orders(ids=[order_id])[0]["lines"]
        assert next(line["picked"] for line in lines if line["sku"] == sku) >= quantity


def test_a_viewer_cannot_work_a_terminal(page, service):
    open_terminal(page, service.url, "pick-2", "vic", "vic-pw")
    expect(page.locator("#readonly")).to_be_visible()
    for button in ("#start", "#confirm", "#short"):
        expect(page.locator(button)).to_be_hidden()
    before = len(service.store.audit_log(1000))
    for path in ("pick-start", "confirm", "short-pick"):
        status = page.evaluate("""p => fetch('/api/stations/pick-2/terminal/' + p, {method: 'POST',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('fleet-token'), 'Content-Type': 'application/json'},
            body: JSON.stringify({quantity: 1})}).then(r => r.status)""", path)
        assert status == 403, path
    assert page.evaluate("window.fleetTerminal.view.manned") is False
    assert len(service.store.audit_log(1000)) == before


def click_cell(page: Page, x: int, y: int) -> None:
    """A click on the map at the centre of cell (x, y)."""
    box = page.locator("#map").bounding_box()
    view = page.evaluate("window.fleetConsole.view")
    page.mouse.click(box["x"] + view["ox"] + (x + 0.5) * view["scale"], box["y"] + view["oy"] + (y + 0.5) * view["scale"])


def test_operator_sends_a_robot_to_charge_and_moves_a_shelf(page, service, tmp_path):
    log_in(page, service.url, "ann", "ann-pw")
    page.locator("#robots tbody tr[data-id='robot-11']").click()
    page.click("#sel-charge")
    expect(page.locator("#message")).to_have_text("robot-11 sent to charge")
    assert [(e.user, e.target) for e in service.store.audit_log(20) if e.action == "charge"] == [("ann", "robot-11")]

    # an empty shelf (no pick calls it) with no robot near, and a storage cell no shelf calls home
    sched = service.runtime.work.scheduler
    robots = [(r[0], r[1]) for r in service.runtime.snapshot().robots.values()]
    shelf_id, cell = service.runtime.call(lambda: next(
        (s.id, s.cell) for s in sched.inventory.shelves() if s.empty and s.at_home and s.id not in sched.itinerary
        and all(abs(s.cell.x - x) + abs(s.cell.y - y) > 2 for x, y in robots)))
    homes = service.runtime.call(lambda: {s.home for s in sched.shelves.values()})
    target = next(c for c in sched.map.cells_of(CellKind.STORAGE) if c not in homes)
    click_cell(page, *cell)
    expect(page.locator("#shelf-id")).to_have_text(shelf_id)
    expect(page.locator("dd[data-fact='home']")).to_have_text(f"({cell.x}, {cell.y})")
    page.click("#shelf-pick")
    click_cell(page, *target)
    expect(page.locator("#shelf-target")).to_have_value(f"{target.x},{target.y}")
    page.click("#shelf-move")
    expect(page.locator("#message")).to_have_text(f"shelf {shelf_id} moves to ({target.x}, {target.y})")
    expect(page.locator("dd[data-fact='home']")).to_have_text(f"({target.x}, {target.y})")
    page.wait_for_function("([id, x, y]) => { const w = window.fleetConsole.shelves.get(id); "
                           "return Array.isArray(w) && w[0] === x && w[1] === y; }",
                           arg=[shelf_id, target.x, target.y], timeout=60000)
    expect(page.locator("dd[data-fact='at']")).to_have_text(f"({target.x}, {target.y})")
    page.screenshot(path=str(tmp_path / "console-shelf-moved.png"))
    # a bad target is refused with the reason, and nothing moves
    page.fill("#shelf-target", "0,0")
    page.click("#shelf-move")
    expect(page.locator("#message")).to_contain_text("not a storage cell")
