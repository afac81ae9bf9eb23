"""`fleet demo` as a person runs it: one process that starts a private MQTT broker, emulated
VDA 5050 robots on it and the control-room service, prints the console's URL and a demo
login, and runs until Ctrl-C or for --duration simulated seconds, after which it prints
`fleet sim`'s KPI fields as JSON. With --broker it uses that broker instead (here the
session's private Mosquitto, where a recorder sees the demo's vehicles drive)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fleet.cli import main
from fleet.clock import WallClock
from fleet.simulation import SimConfig, Simulation
from maps import shipped_map

ROOT = Path(__file__).resolve().parent.parent


def demo(*options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fleet", "demo", "--port", "0", *options], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def console(proc: subprocess.Popen) -> tuple[str, dict[str, str]]:
    """The URL the demo printed, and an operator's token got with the login it printed."""
    line = proc.stdout.readline()
    found = re.search(r"console at (http://\S+/)\s+\(log in as .*(operator) / (operator)", line)
    assert found, f"no console URL and login: {line!r}; {proc.stderr.read() if proc.poll() is not None else ''}"
    url, user, password = found.groups()
    token = httpx.post(url + "api/login", json={"username": user, "password": password}).json()["token"]
    return url, {"Authorization": f"Bearer {token}"}


def wait_for(predicate, limit: float, what: str):
    deadline = time.monotonic() + limit
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"{what} not within {limit} s"
        time.sleep(0.1)
    return result


def children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def summary_of(proc: subprocess.Popen, limit: float) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=limit)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.fixture(scope="module")
def sim_fields() -> tuple[set[str], set[str]]:
    """The fields of `fleet sim --json`, and of each station in it."""
    kpis = Simulation(shipped_map("demo"), SimConfig(robots=2, hours=0.005)).run()
    return set(kpis), set(next(iter(kpis["stations"].values())))


def test_demo_runs_on_its_own_broker_and_prints_fleet_sims_kpis(sim_fields):
    proc = demo("--robots", "6", "--duration", "400", "--speed", "40")
    try:
        url, operator = console(proc)
        broker = wait_for(lambda: [c for c in children(proc.pid)
                                   if "mosquitto" in Path(f"/proc/{c}/cmdline").read_text()], 5, "a Mosquitto child")
        robots = wait_for(lambda: len(r := httpx.get(url + "api/robots", headers=operator).json()) == 6 and r,
                          10, "six robots adopted from the broker")
        assert {r["id"] for r in robots} == {f"robot-{k}" for k in range(1, 7)}
        assert httpx.get(url + "console/").status_code == 200
        kpis, err = summary_of(proc, 60)
    finally:
        proc.kill()
        proc.wait()
    fields, station_fields = sim_fields
    assert set(kpis) == fields
    assert all(set(s) == station_fields for s in kpis["stations"].values())
    assert (kpis["map"], kpis["robots"], kpis["seed"]) == ("demo", 6, 0)
    assert 400 <= kpis["simulated_seconds"] < 420, kpis
    assert kpis["orders_completed"] > 0 and kpis["order_lines_picked"] > 0, kpis
    assert kpis["robot_utilisation"] > 0.3, kpis
    assert kpis["collisions"] == 0 and kpis["failed_errands"] == 0, kpis
    assert "private MosquittoBroker" in err
    assert not any(alive(pid) for pid in broker), "the demo's broker outlived it"


def test_demo_drives_its_robots_on_an_external_broker(mqtt_url, record_broker):
    recorder = record_broker(mqtt_url, "uagv/v2/fleet-demo/+/state")
    proc = demo("--broker", mqtt_url, "--robots", "3", "--duration", "150", "--speed", "30", "--no-operators")
    try:
        kpis, err = summary_of(proc, 60)
    finally:
        proc.kill()
        proc.wait()
    assert f"on the broker at {mqtt_url}" in err and "no operators" in err
    assert kpis["robots"] == 3 and kpis["collisions"] == 0, kpis
    assert kpis["units_picked"] == 0, "nobody works the stations with --no-operators"
    places: dict[str, set[tuple[float, float]]] = {}
    for message in recorder.snapshot():
        state = json.loads(message.payload)
        if state.get("agvPosition"):
            places.setdefault(state["serialNumber"], set()).add(
                (round(state["agvPosition"]["x"], 1), round(state["agvPosition"]["y"], 1)))
    assert set(places) == {"robot-1", "robot-2", "robot-3"}
    assert all(len(p) > 3 for p in places.values()), "every robot drove (seen in its VDA 5050 states)"


def test_ctrl_c_stops_the_demo_and_its_amqtt_broker():
    """Until Ctrl-C by default; here on amqtt, the broker for machines without Mosquitto."""
    proc = demo("--robots", "4", "--embedded-broker", "amqtt")
    try:
        url, operator = console(proc)
        wait_for(lambda: len(httpx.get(url + "api/robots", headers=operator).json()) == 4, 10,
                 "four robots adopted over amqtt")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "stopping" in err and "Traceback" not in err, err
    assert not out.strip(), "no summary without --duration"
    assert "AmqttBroker" in err


def test_the_demos_clock_holds_at_zero_until_everything_is_up():
    clock = WallClock(50, running=False)
    time.sleep(0.05)
    assert clock.now() == 0.0
    clock.start()
    time.sleep(0.05)
    assert 2.0 <= clock.now() < 10.0


@pytest.mark.parametrize("options, message", [
    (["--robots", "0"], "--robots must be at least 1, got 0"),
    (["--map", "/nonexistent/warehouse.toml"], "--map: /nonexistent/warehouse.toml:0:0: cannot read map file"),
    (["--speed", "0"], "--speed must be above 0"),
    (["--duration", "-5"], "--duration must be positive"),
    (["--port", "70000"], "--port must be 0..65535"),
    (["--broker", "http://127.0.0.1:1883"], "--broker: "),
    (["--robots", "5000"], "--robots: "),
    (["--faults"], "--faults needs --headless"),
    (["--headless", "--broker", "mqtt://127.0.0.1"], "--broker does not go with --headless"),
])
def test_a_bad_option_exits_2_naming_it(options, message, capsys):
    assert main(["demo", *options]) == 2
    err = capsys.readouterr().err
    assert f"fleet demo: {message}" in err, err
