"""The KPI history and the console's charts of it, against a running service (emulated
robots on the demo map, paced fast, simulated people at the ports): the history counts what
the scheduler counted and the robots' states as the runtime names them, in fixed memory;
/api/kpis/history checks its query; and in real headless Chromium the KPI panel draws
robots by state (stacked, in the map's colours) and lines per hour per station. The
screenshot lands in the test's tmp dir (and in docs/img/console-kpis.png when
FLEET_SCREENSHOT is set)."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from firmware_emulator.faults import MotorStall
from fleet.scheduler.workflows import PresentationRecord
from fleet.service.app import Service
from fleet.service.kpi_history import KpiHistory
from fleet.service.runtime import ROBOT_STATES
from maps.model import StationKind
from test_console_browser import browser, page  # noqa: F401 (fixtures)
from test_service_api import as_, service_settings, wait_for

ROBOTS = 16
VIEWER, OPERATOR = as_("viewer"), as_("operator")
SHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "console-kpis.png"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(service_settings(tmp_path_factory.mktemp("kpis"), robots={"emulated": ROBOTS},
                                   warehouse={"orders_per_hour": 1500}))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def worked(service, client):
    """The history once it has a few samples and some station has worked lines."""
    def ready():
        h = client.get("/api/kpis/history", headers=VIEWER).json()
        return len(h["t"]) >= 4 and any(s["lines"][-1] > 0 for s in h["stations"].values())
    assert wait_for(ready, timeout=240), client.get("/api/kpis/history", headers=VIEWER).json()
    return client.get("/api/kpis/history", headers=VIEWER).json()


def test_history_counts_the_lines_the_scheduler_counted(service, client, worked):
    h = worked
    sched = service.runtime.work.scheduler
    records = service.runtime.call(lambda: list(sched.presented))
    assert h["interval_s"] == 60 and h["keep"] == 240 and h["window_s"] == 900
    assert list(h["stations"]) == [s.id for s in service.runtime.wmap.stations]
    for station_id, series in h["stations"].items():
        assert series["kind"] in ("pick", "stow")
        assert len(series["lines"]) == len(series["lines_per_hour"]) == len(h["t"])
        for t, lines in zip(h["t"], series["lines"]):
            assert lines == sum(r.lines for r in records if r.station_id == station_id and h["started"] < r.end <= t)
    # a sample a minute of fleet time, counted from the start
    assert all(abs((b - a) - 60) < 1 for a, b in zip(h["t"], h["t"][1:])), h["t"]
    # every robot in one state at every sample
    assert list(h["robots"]) == list(ROBOT_STATES)
    assert all(sum(h["robots"][s][i] for s in ROBOT_STATES) == ROBOTS for i in range(len(h["t"])))
    # over a window longer than the history: lines since the start per hour since the start
    whole = client.get("/api/kpis/history", params={"window_s": 86400}, headers=VIEWER).json()
    for series in whole["stations"].values():
        for t, lines, rate in zip(whole["t"], series["lines"], series["lines_per_hour"]):
            assert rate == round(lines * 3600 / (t - whole["started"]), 1)


def test_since_gives_only_newer_samples_and_stations_can_be_chosen(client, worked):
    h = worked
    newer = client.get("/api/kpis/history", params={"since": h["t"][1]}, headers=VIEWER).json()
    assert newer["t"][:len(h["t"]) - 2] == h["t"][2:]
    # lines per hour look back across `since`: the same figures as in the whole history
    n = len(h["t"]) - 2
    assert newer["stations"]["pick-1"]["lines_per_hour"][:n] == h["stations"]["pick-1"]["lines_per_hour"][2:]
    one = client.get("/api/kpis/history", params={"station": ["pick-2", "pick-2"], "since": 1e12},
                     headers=VIEWER).json()
    assert list(one["stations"]) == ["pick-2"] and one["t"] == [] and one["stations"]["pick-2"]["lines"] == []


@pytest.mark.parametrize("params, message", [
    ({"window_s": 30}, "window_s 30 is shorter than the sampling interval (60 s): nothing to count over"),
    ({"station": ["pick-1", "dock-9"]}, "unknown station(s) 'dock-9'; stations are pick-1, pick-2, stow-1"),
])
def test_bad_query_is_refused_with_a_specific_message(client, params, message):
    r = client.get("/api/kpis/history", params=params, headers=VIEWER)
    assert r.status_code == 422 and r.json()["detail"] == message


@pytest.mark.parametrize("params, where, message", [
    ({"since": -1}, "since", "Input should be greater than or equal to 0"),
    ({"since": "nan"}, "since", "Input should be a finite number"),
    ({"window_s": "quarter"}, "window_s", "Input should be a valid number, unable to parse string as a number"),
    ({"window_s": 0}, "window_s", "Input should be greater than 0"),
    ({"window_s": 10**7}, "window_s", "Input should be less than or equal to 604800"),
])
def test_malformed_query_names_the_parameter(client, params, where, message):
    r = client.get("/api/kpis/history", params=params, headers=VIEWER)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert (error["loc"], error["msg"]) == (["query", where], message)


def test_history_needs_a_login_and_is_in_the_openapi_docs(client):
    assert client.get("/api/kpis/history").status_code == 401
    operation = client.get("/openapi.json").json()["paths"]["/api/kpis/history"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"since", "window_s", "station"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("KpiHistoryOut")


def test_the_ring_keeps_fixed_memory_and_rates_count_from_the_oldest_kept():
    history = KpiHistory(["pick-1", "stow-1"], interval_s=60, keep=3)
    records: list[PresentationRecord] = []
    assert not history.observe(0.25, records, [])
    for minute in range(1, 11):
        records.append(PresentationRecord("pick-1", StationKind.PICK, "SH1", minute * 60 - 30, minute * 60, 2, 5))
        assert not history.observe(minute * 60.0, records, [])  # a sample is due at 60.25, 120.25, ...
        assert history.observe(minute * 60.0 + 0.25, records, [])
    assert len(history.samples) == 3 and [s.lines for s in history.samples] == [(16, 0), (18, 0), (20, 0)]
    assert history.origin.lines == (14, 0)  # the last sample that dropped out
    out = history.series(window_s=3600)
    assert out["stations"]["pick-1"]["lines_per_hour"] == [120.0, 120.0, 120.0]  # 2 lines a minute
    assert out["robots"] == {s: [0, 0, 0] for s in ROBOT_STATES}
    with pytest.raises(ValueError, match="keep >= 1"):
        KpiHistory(["pick-1"], keep=0)


def test_console_draws_robot_states_and_lines_per_hour(page, service, worked, tmp_path):  # noqa: F811
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(service.url)
    page.fill("#login-user", "ann")
    page.fill("#login-password", "s3cret")
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    page.wait_for_function(f"window.fleetConsole.robots.size === {ROBOTS}")
    samples = 15 if os.environ.get("FLEET_SCREENSHOT") else 4  # the docs' picture shows a quarter of an hour
    page.wait_for_function(f"window.fleetConsole.kpiHistory.t.length >= {samples}", timeout=180000)
    page.locator("#kpi-panel").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    # the history and what is drawn of it, read at one moment (a new sample redraws the charts)
    drawn = page.evaluate("""(() => {
        const all = (sel, f) => [...document.querySelectorAll(sel)].map(f);
        const swatch = (el) => getComputedStyle(el.querySelector('i')).backgroundColor;
        return {
            history: window.fleetConsole.kpiHistory,
            bands: all('#chart-states polygon.band', (p) => [p.dataset.state, p.getAttribute('points').split(' ').length]),
            legend: all('#chart-states-legend span', (el) => [el.dataset.state, el.textContent.trim(), swatch(el)]),
            map_legend: Object.fromEntries(all('#legend span', (el) => [el.textContent.trim(), swatch(el)])),
            lines: all('#chart-lines figure', (f) => [f.dataset.station, f.querySelector('polyline.series').getAttribute('points').split(' ').length]),
            ticks: all('#chart-states text.tick', (t) => t.textContent),
        };
    })()""")
    h, n = drawn["history"], len(drawn["history"]["t"])
    # robots by state: a band per state that occurred, each a polygon over every sample, stacked to the fleet
    assert [state for state, _ in drawn["bands"]] == [s for s in ROBOT_STATES if any(h["robots"][s])]
    assert all(points == 2 * n for _, points in drawn["bands"]), drawn["bands"]
    assert all(sum(h["robots"][s][i] for s in ROBOT_STATES) == ROBOTS for i in range(n))
    # the legend: each state's latest count, in the map's colour for it
    assert [state for state, _, _ in drawn["legend"]] == [state for state, _ in drawn["bands"]]
    for state, text, colour in drawn["legend"]:
        assert text == f"{state.replace('_', ' ')} {h['robots'][state][-1]}"
        assert colour == drawn["map_legend"][state.replace("_", " ")], state
    # lines per hour: a small chart per station, a line through every sample, some above 0
    assert drawn["lines"] == [["pick-1", n], ["pick-2", n], ["stow-1", n]]
    assert any(max(s["lines_per_hour"]) > 0 for s in h["stations"].values())
    # axis labels: round numbers on the y axis from 0, fleet time (h:mm) under the x axis
    assert drawn["ticks"][0] == "0" and all(":" in t for t in drawn["ticks"][-2:]), drawn["ticks"]
    assert page.locator("#chart-note").inner_text().startswith(f"x: fleet time (h:mm); {n} samples")
    page.screenshot(path=str(tmp_path / "console-kpis.png"))
    if os.environ.get("FLEET_SCREENSHOT"):
        page.screenshot(path=str(SHOT))


def test_paused_robots_are_sampled_as_paused(service, client, worked):
    """It holds the fleet for a sample (after the browser tests, which want it moving)."""
    assert client.post("/api/fleet/pause", headers=OPERATOR).status_code == 200
    try:
        paused_at = service.runtime.snapshot().time
        assert wait_for(lambda: any(t > paused_at for t in client.get("/api/kpis/history", headers=VIEWER).json()["t"]),
                        timeout=60)
        h = client.get("/api/kpis/history", params={"since": paused_at}, headers=VIEWER).json()
        assert h["robots"]["paused"][0] == ROBOTS
        assert all(h["robots"][s][0] == 0 for s in ROBOT_STATES if s != "paused")
    finally:
        assert client.post("/api/fleet/resume", headers=OPERATOR).status_code == 200


def test_the_robots_panel_filters_by_errors(page, service, client):  # noqa: F811
    """Last: a robot's motors stall (a fatal error it keeps until the stall is over and a reset)."""
    world = service.runtime.motion.link.inner._world
    service.runtime.call(lambda: world.inject(MotorStall("robot-05", 20.0)))
    stalled_at = service.runtime.snapshot().time
    try:
        page.goto(service.url)
        page.fill("#login-user", "ann")
        page.fill("#login-password", "s3cret")
        page.click("#login-submit")
        page.wait_for_function(f"window.fleetConsole.robots.size === {ROBOTS}")
        page.wait_for_function("window.fleetConsole.errors.has('robot-05')")
        page.check("#error-filter")
        with_errors = page.evaluate("[...window.fleetConsole.errors.keys()].sort()")
        expect(page.locator("#robot-count")).to_have_text(f"{len(with_errors)} of {ROBOTS}")
        assert page.locator("#robots tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)") == with_errors
        expect(page.locator("#robots tbody tr[data-id='robot-05'] .err")).to_have_text("⚠ motor_stall")
        page.locator("#robots tbody tr[data-id='robot-05']").click()
        expect(page.locator("dd[data-fact='errors']")).to_have_text("motor_stall (fatal)")
        page.uncheck("#error-filter")
        expect(page.locator("#robot-count")).to_have_text(f"{ROBOTS} of {ROBOTS}")
    finally:
        assert wait_for(lambda: service.runtime.snapshot().time > stalled_at + 20)  # then a reset clears it
        assert client.post("/api/fleet/reset", headers=OPERATOR).status_code == 200
