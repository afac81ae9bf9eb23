"""The console in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
log in, robots move on the live map, pause a robot and see it stop, a viewer cannot act.
Screenshots land in the test's tmp dir (and the README's in docs/img/console.png when
FLEET_SCREENSHOT is set)."""

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from fleet.service.app import Service
from fleet.service.auth import hash_password
from fleet.service.config import Settings, User

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
README_SHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "console.png"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = Settings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path_factory.mktemp('console')}/fleet.db"},
        "console": {"port": 0, "update_interval_s": 0.1},
        "robots": {"emulated": 24},
        "runtime": {"speed": 8.0},
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
    before = len(service.store.audit_log(1000))
    # even if the page is tampered with, the server says no
    status = page.evaluate("""fetch('/api/robots/robot-03/pause', {method: 'POST',
        headers: {Authorization: 'Bearer ' + window.fleetConsole.token}}).then(r => r.status)""")
    assert status == 403
    time.sleep(0.3)
    assert page.evaluate("window.fleetConsole.robots.get('robot-03').state") != "paused"
    assert len(service.store.audit_log(1000)) == before
