"""`fleet serve` drives robots on real links: VDA 5050 vehicles on a real Mosquitto broker
and robots on serial lines over real pseudo-terminals, named in its configuration file.

In the first test the robots are the firmware emulator in this test's process, all in ONE
world (the independent witness of collisions), behind the same wires a real robot would
use: each vehicle its own MQTT client, each serial robot its own pty; the service is
another process that knows them only by its configuration. The others build the runtime
through fleet/service/wiring.py in process: emulated robots beside a serial one on wall
time, a TLS broker with a password, adoption's rules, an id taken twice.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

from drivers.events import StatusReport
from drivers.fleet_link import FleetLink
from drivers.inprocess import InProcessLink
from drivers.vda5050.mqtt import BrokerConfig, TopicLayout
from firmware_emulator.serial_front import SerialFloor, SerialLines
from firmware_emulator.vda5050_vehicle import MqttFloor
from firmware_emulator.world import World
from fleet.clock import SimulatedClock, WallClock
from fleet.motion import Errand
from fleet.service.auth import hash_password
from fleet.service.config import ConfigError, Settings, load_settings
from fleet.service.store import Store
from fleet.service.warehouse import shelf_homes, stock_and_demand
from fleet.service.wiring import Adoption, build_runtime, load_warehouse_map
from maps import Cell, CellKind, Heading, shipped_map

ROOT = Path(__file__).resolve().parent.parent
#: The robots' world runs this many times faster than wall time (the service's clock):
#: the wires' timers stay real, only the robots drive faster.
SPEED = 4.0


class Floor:
    """One emulated world; some robots on the broker, some on serial lines; one lock."""

    def __init__(self, settings: Settings, vehicles: list[str], lines: SerialLines, late: list[str]) -> None:
        wmap = load_warehouse_map(settings.map.name)
        # the shelves stand where the service's scenario says, as in a real warehouse
        shelves = shelf_homes(stock_and_demand(settings, wmap))
        self.world = World(wmap, WallClock(SPEED), seed=3, shelves=shelves)
        for robot_id, cell in zip(vehicles + list(lines.master_urls) + late, wmap.cells_of(CellKind.PARKING)):
            self.world.add_robot(robot_id, cell, Heading.NORTH)
        self.lines = lines
        self.serial = SerialFloor(self.world, self.lines.robot_ports)
        self.mqtt_url = settings.broker.url
        self.interface = settings.broker.interface
        self.lock = self.serial.lock
        self.vehicles = [self._vehicles(vehicles)]
        self.late = late
        self._stop = threading.Event()
        self._runner = threading.Thread(target=self._run, daemon=True)
        self.carried: set[str] = set()  # robots seen with a shelf on top
        self.error: BaseException | None = None

    def _vehicles(self, robot_ids: list[str]) -> MqttFloor:
        floor = MqttFloor(self.world, self.mqtt_url, robot_ids=robot_ids, state_interval=2.0,
                          layout=TopicLayout(interface_name=self.interface))
        floor.lock = self.lock  # one world, one lock, whichever wire a command came by
        return floor

    def start(self) -> None:
        self.serial.start()
        assert self.vehicles[0].start(10)
        self._runner.start()

    def bring_late_vehicles_online(self) -> None:
        floor = self._vehicles(self.late)
        assert floor.start(10)
        with self.lock:
            self.vehicles.append(floor)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.world.dt / 2):
                with self.lock:
                    self.world.run_paced(self.world.now())
                    for floor in self.vehicles:
                        floor.flush()
                    self.carried |= {u.id for u in self.world.units if u.status().shelf_id is not None}
        except BaseException as exc:  # the test must hear of it, not see frozen robots
            self.error = exc
            raise

    def close(self) -> None:
        self._stop.set()
        if self._runner.is_alive():
            self._runner.join(5)
        for floor in self.vehicles:
            floor.close()
        self.serial.close()
        self.lines.close()


def serve(config: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`fleet serve` in its own process, its log in a file (shown when the test fails)."""
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "serve", "--config", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=out)
    try:
        found = wait_for(lambda: re.search(r"console at (http://\S+/)", log.read_text()) or proc.poll() is not None,
                         20, "the console URL")
        assert proc.poll() is None, log.read_text()
    except BaseException:
        stop(proc)
        raise
    return proc, found.group(1)


def stop(proc: subprocess.Popen) -> None:
    """As an operator stops it (SIGTERM); killed if it does not stop, which fails the test:
    a left-over service would go on opening the ports of later tests by path."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("fleet serve did not stop on SIGTERM within 15 s") from None


def wait_for(predicate, limit: float, what: str | Callable[[], str], period: float = 0.2):
    deadline = time.monotonic() + limit
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"{what if isinstance(what, str) else what()} not within {limit} s"
        time.sleep(period)
    return result


def test_serve_adopts_vehicles_and_serial_robots_and_they_move_shelves(mqtt_url, tmp_path):
    """Two vehicles and two serial robots are there at start, a third vehicle comes ONLINE
    later: all join, and the scheduler's stow and pick work has each of them carry a shelf.
    The vehicles use an interface name of their own on the session's broker, so that only
    they are adopted (and the setting is seen to work)."""
    vehicles, serial, late = ["svc-v1", "svc-v2"], ["svc-s1", "svc-s2"], ["svc-v3"]
    lines = SerialLines("pty", serial)
    ports = "".join(f'[[serial.robots]]\nid = "{r}"\nport = "{lines.master_urls[r]}"\n' for r in serial)
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[map]\nname = "demo"\n[broker]\nenabled = true\nurl = "{mqtt_url}"\ninterface = "svclinks"\n'
        f'[serial]\nwatchdog_s = 2.0\nlost_after_s = 2.0\n{ports}[runtime]\ncycle_s = 0.1\n'
        f'[warehouse]\ninbound_notes_per_hour = 1000\norders_per_hour = 3600\ngenerated_hours = 0.05\n'
        f'[database]\nurl = "sqlite:///{tmp_path}/fleet.db"\n[console]\nport = 0\n'
        f'[[users]]\nname = "ann"\nrole = "viewer"\npassword_hash = "{hash_password("pw")}"\n')
    log = tmp_path / "serve.log"
    floor = Floor(load_settings(config, environ={}), vehicles, lines, late)
    try:
        floor.start()
        proc, url = serve(config, log)
        try:
            login = wait_for(lambda: httpx.post(url + "api/login", json={"username": "ann", "password": "pw"}),
                             10, "login")
            headers = {"Authorization": f"Bearer {login.json()['token']}"}

            def robots_in_service() -> set[str]:
                return {row["id"] for row in httpx.get(url + "api/robots", headers=headers).json()}

            wait_for(lambda: robots_in_service() == set(vehicles + serial), 15, "the vehicles and serial robots")
            floor.bring_late_vehicles_online()  # a vehicle that comes ONLINE while the service runs
            wait_for(lambda: robots_in_service() == set(vehicles + serial + late), 10, "the late vehicle")
            wait_for(lambda: floor.carried >= set(vehicles + serial + late), 40,
                     lambda: f"every robot carrying a shelf (only {sorted(floor.carried)}; "
                             f"log:\n{log.read_text()[-3000:]})")
            assert proc.poll() is None, log.read_text()
        finally:
            stop(proc)
    finally:
        floor.close()
    assert floor.error is None
    assert floor.world.collisions == []
    assert floor.world.laser_stops == 0


def test_emulated_robots_beside_a_serial_robot_run_on_wall_time(tmp_path):
    """Built through the wiring, in process: emulated robots and a robot on a serial line
    in one runtime. With a real link the runtime runs on a WallClock, paced one cycle per
    cycle_s, and the emulated world is stepped along with it; both kinds drive errands."""
    wmap = shipped_map("demo")
    lines = SerialLines("pty", ["bench-1"])
    bench_world = World(wmap, WallClock(), seed=5)  # the bench robot's own world: not the service's
    bench_world.add_robot("bench-1", Cell(26, 3), Heading.NORTH)
    bench = SerialFloor(bench_world, lines.robot_ports)
    stepping = threading.Event()
    runner = threading.Thread(target=bench.run, kwargs={"stop": stepping}, daemon=True)
    settings = Settings.model_validate({
        "robots": {"emulated": 2}, "runtime": {"cycle_s": 0.1},
        "serial": {"robots": [{"id": "bench-1", "port": lines.master_urls["bench-1"]}]}})
    store = Store.open(f"sqlite:///{tmp_path}/fleet.db")
    runtime = None
    try:
        bench.start()
        runner.start()
        runtime = build_runtime(settings, store, wmap)
        assert isinstance(runtime.clock, WallClock)
        runtime.start()
        started = time.monotonic()
        wait_for(lambda: set(runtime.snapshot().robots) == {"robot-1", "robot-2", "bench-1"}, 10, "the bench robot")
        goals = {"robot-1": Cell(2, 1), "bench-1": Cell(26, 1)}
        for robot_id, goal in goals.items():
            runtime.call(lambda r=robot_id, g=goal: runtime.motion.assign(r, Errand(f"to-{r}", g)))
        wait_for(lambda: all(runtime.snapshot().robots[r][:2] == (g.x, g.y) for r, g in goals.items()), 20,
                 lambda: f"both at their goals: {runtime.snapshot().robots}")
        elapsed, cycles = time.monotonic() - started, runtime.snapshot().cycle
        assert 0.5 * elapsed / 0.1 < cycles < 1.2 * elapsed / 0.1 + 5, (elapsed, cycles)
        assert bench_world.robots["bench-1"].cell == goals["bench-1"]
    finally:
        if runtime is not None:
            runtime.stop()  # closes the links: the serial port, the emulated world's subscription
        store.close()
        stepping.set()
        runner.join(5)
        bench.close()
        lines.close()


def test_a_serial_robot_named_like_an_emulated_one_is_refused_before_any_port_opens(tmp_path):
    settings = Settings.model_validate({
        "robots": {"emulated": 2}, "serial": {"robots": [{"id": "robot-2", "port": "/dev/does-not-exist"}]}})
    store = Store.open(f"sqlite:///{tmp_path}/fleet.db")
    try:
        with pytest.raises(ConfigError, match=r"serial.robots: id\(s\) \['robot-2'\] already taken by emulated robots"):
            build_runtime(settings, store)
    finally:
        store.close()


def test_adoption_holds_a_newcomer_until_it_is_located_and_refuses_a_taken_id(caplog):
    """Two worlds stand in for two wires: on the fixed link robot "x" is configured; the
    adopting link comes to know "x" too (refused: taken) and "y" (routed, held, offered)."""
    wmap = shipped_map("demo")
    clock = SimulatedClock()
    cells = wmap.cells_of(CellKind.PARKING)
    fixed_world, adopting_world = World(wmap, clock), World(wmap, clock)
    fixed_world.add_robot("x", cells[0], Heading.NORTH)
    adopting_world.add_robot("x", cells[1], Heading.NORTH)
    adopting_world.add_robot("y", cells[2], Heading.EAST)
    fixed, adopting = InProcessLink(fixed_world), InProcessLink(adopting_world)
    adoption = Adoption(FleetLink({"x": fixed}, [fixed, adopting]), [adopting], clock)
    members: set[str] = set()
    adoption.members = members.__contains__
    for unit in (fixed_world.robots["x"], adopting_world.robots["x"], adopting_world.robots["y"]):
        unit.report_status()
    assert adoption.drain() == []  # nobody is in motion control yet: everything is held
    assert "not adopted" in caplog.text and "'x'" in caplog.text
    assert adoption.fleet.link_of("x") is fixed and adoption.fleet.link_of("y") is adopting
    offered = {s.robot_id: (s.cell, s.heading) for s in adoption.arrivals()}
    assert offered == {"x": (cells[0], Heading.NORTH), "y": (cells[2], Heading.EAST)}
    assert adoption.arrivals() == []  # offered again only after RETRY_S
    clock.advance(Adoption.RETRY_S)
    assert [s.robot_id for s in adoption.arrivals()] == ["x", "y"]
    members.add("y")  # the runtime took y; x could not join (say its cell was held)
    adopting_world.robots["y"].report_status()
    drained = adoption.drain()  # what was held about y (its condition), then what is new
    assert {e.robot_id for e in drained} == {"y"} and isinstance(drained[-1], StatusReport)
    clock.advance(Adoption.RETRY_S)
    assert [s.robot_id for s in adoption.arrivals()] == ["x"]


def test_a_vehicle_on_a_tls_broker_with_a_password_joins(secure_broker, tmp_path):
    """broker.url mqtts://, username/password and ca_file reach the master link as the
    drivers need them: the service connects, verifies the broker, and adopts a vehicle."""
    wmap = shipped_map("demo")
    world = World(wmap, WallClock(), seed=2)
    world.add_robot("tls-1", Cell(2, 3), Heading.NORTH)
    credentials = {"username": "fleet", "password": "s3cret", "ca_certs": str(secure_broker.tls.ca)}
    floor = MqttFloor(world, BrokerConfig.from_url(secure_broker.url, **credentials), state_interval=2.0)
    stepping = threading.Event()
    runner = threading.Thread(target=floor.run, kwargs={"stop": stepping}, daemon=True)
    settings = Settings.model_validate({"broker": {
        "enabled": True, "url": secure_broker.url, "username": "fleet", "password": "s3cret",
        "ca_file": str(secure_broker.tls.ca)}})
    store = Store.open(f"sqlite:///{tmp_path}/fleet.db")
    runtime = None
    try:
        assert floor.start(10)
        runner.start()
        runtime = build_runtime(settings, store, wmap)
        runtime.start()
        wait_for(lambda: set(runtime.snapshot().robots) == {"tls-1"}, 10, "the vehicle over TLS")
        assert runtime.snapshot().robots["tls-1"][:3] == (2, 3, int(Heading.NORTH))
    finally:
        if runtime is not None:
            runtime.stop()
        store.close()
        stepping.set()
        runner.join(5)
        floor.close()
