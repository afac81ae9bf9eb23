"""Settings: defaults, the TOML file, FLEET_* overrides, specific errors, and the
documentation listing every setting."""

from pathlib import Path

import pytest

from fleet.scheduler.operators import OperatorTimes
from fleet.service.config import ConfigError, documented_settings, load_settings
from fleet.service.store import Store
from fleet.service.wiring import build_runtime

DOCS = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def test_defaults_without_a_file():
    s = load_settings(None, environ={})
    assert (s.map.name, s.database.url, s.console.port, s.users) == ("demo", "sqlite:///fleet.db", 8080, [])


def test_file_then_environment_wins(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text('[map]\nname = "medium"\n[console]\nport = 9000\n'
                    '[[users]]\nname = "ann"\nrole = "operator"\n')
    s = load_settings(path, environ={"FLEET_CONSOLE_PORT": "9100", "FLEET_BROKER_TLS": "true"})
    assert (s.map.name, s.console.port, s.broker.tls) == ("medium", 9100, True)
    assert [(u.name, u.role) for u in s.users] == [("ann", "operator")]
    s = load_settings(path, environ={"FLEET_USERS": '[{"name": "bob", "role": "viewer"}]'})
    assert [(u.name, u.role) for u in s.users] == [("bob", "viewer")]


@pytest.mark.parametrize("text, environ, message", [
    ("[console]\nport = 70000\n", {}, "console.port"),
    ("[console]\nprot = 8080\n", {}, "console.prot: Extra inputs are not permitted"),
    ('[database]\nurl = "mysql://x"\n', {}, "database.url"),
    ('[[users]]\nname = "ann"\nrole = "boss"\n', {}, "users.0.role"),
    ('[[users]]\nname = "ann"\nrole = "viewer"\n[[users]]\nname = "ann"\nrole = "admin"\n', {}, "unique"),
    ("[map\n", {}, "not valid TOML"),
    ("", {"FLEET_CONSOLE_PORT": "eighty"}, "console.port"),
    ("", {"FLEET_CONSOL_PORT": "80"}, "unknown environment setting(s): FLEET_CONSOL_PORT"),
    ("", {"FLEET_USERS": "[{"}, "FLEET_USERS: not valid JSON"),
])
def test_bad_settings_name_the_file_and_the_setting(tmp_path, text, environ, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=environ)
    assert message in str(err.value)
    if not message.startswith(("unknown", "FLEET_USERS")):
        assert str(path) in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_every_setting_is_documented_with_its_variable_and_default():
    doc = DOCS.read_text()
    for setting, variable, default in documented_settings():
        assert f"| `{setting}` | `{variable}` | `{default!r}` |" in doc, setting


def test_robots_on_real_links(tmp_path):
    """A broker and serial robots: each wire's settings as the drivers need them, list
    settings overridable as JSON, and no phantom emulated robots unless asked for."""
    path = tmp_path / "fleet.toml"
    path.write_text('[broker]\nenabled = true\nurl = "mqtts://fleet:pw@broker.example"\ninterface = "agv"\n'
                    'topic_prefix = "site-1"\nvehicles = ["v1", "v2"]\nmanufacturer = "acme"\n'
                    '[serial]\nwatchdog_s = 2.0\n'
                    '[[serial.robots]]\nid = "bench-1"\nport = "/dev/ttyUSB0"\nbaudrate = 57600\nparity = "E"\n'
                    '[[serial.robots]]\nid = "bench-2"\nport = "socket://terminal-server:4001"\n')
    s = load_settings(path, environ={})
    assert s.real_links and s.robots.emulated == 0 and s.runtime.speed == 1.0
    assert (s.broker.vehicles, s.broker.manufacturer, s.broker.topic_prefix) == (["v1", "v2"], "acme", "site-1")
    assert [(r.id, r.port, r.baudrate) for r in s.serial.robots] == [
        ("bench-1", "/dev/ttyUSB0", 57600), ("bench-2", "socket://terminal-server:4001", 115200)]
    assert s.serial.robots[0].options() == {"bytesize": 8, "parity": "E", "stopbits": 1, "rtscts": False,
                                            "xonxoff": False}
    assert s.serial.link_settings().watchdog == 2.0
    s = load_settings(path, environ={"FLEET_SERIAL_ROBOTS": '[{"id": "r9", "port": "loop://"}]',
                                     "FLEET_BROKER_VEHICLES": '["v7"]', "FLEET_ROBOTS_EMULATED": "3"})
    assert [r.id for r in s.serial.robots] == ["r9"] and s.broker.vehicles == ["v7"] and s.robots.emulated == 3
    assert load_settings(None, environ={}).robots.emulated == 12  # no real link: the emulated demo fleet


@pytest.mark.parametrize("text, environ, message", [
    ('[[serial.robots]]\nid = "a"\nport = "loop://"\nbaud = 9600\n', {}, "serial.robots.0.baud: Extra inputs"),
    ('[[serial.robots]]\nid = "a"\nport = "sokcet://host:1"\n', {}, "pyserial knows no URL scheme 'sokcet'"),
    ('[[serial.robots]]\nid = "a"\nport = "socket://host"\n', {}, "socket:// needs HOST:PORT"),
    ('[[serial.robots]]\nid = "a"\nport = "loop://"\nparity = "X"\n', {}, "serial.robots.0.parity"),
    ('[[serial.robots]]\nid = "a"\nport = "loop://"\n[[serial.robots]]\nid = "a"\nport = "loop://"\n', {},
     "serial robot ids listed twice: ['a']"),
    ('[[serial.robots]]\nid = "bad id"\nport = "loop://"\n', {}, "serial.robots.0.id"),
    ('[serial]\nwatchdog_s = 0.2\n', {}, "shorter than the watchdog"),
    ('[broker]\nurl = "http://broker"\n', {}, "scheme must be mqtt:// or mqtts://"),
    ('[broker]\nurl = "mqtt://broker:99999"\n', {}, "invalid port"),
    ('[broker]\nca_file = "/no/such/ca.pem"\n', {}, "no such file: /no/such/ca.pem"),
    ('[broker]\nvehicles = ["v1"]\n', {}, "broker.vehicles needs broker.manufacturer"),
    ('[broker]\nvehicles = ["v1", "v1"]\nmanufacturer = "acme"\n', {}, "vehicles listed twice"),
    ('[broker]\nenabled = true\nvehicles = ["r1"]\nmanufacturer = "acme"\n'
     '[[serial.robots]]\nid = "r1"\nport = "loop://"\n', {},
     "robot id(s) ['r1'] both in broker.vehicles and serial.robots"),
    ('[broker]\nenabled = true\n[runtime]\nspeed = 5\n', {}, "runtime.speed must be 1 with robots on real links"),
    ("", {"FLEET_SERIAL_ROBOTS": "[{"}, "FLEET_SERIAL_ROBOTS: not valid JSON"),
])
def test_bad_link_settings_are_refused_at_start(tmp_path, text, environ, message):
    path = tmp_path / "links.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=environ)
    assert message in str(err.value)


def test_the_simulated_peoples_pace_reaches_the_operators_at_the_ports(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text("[robots]\nemulated = 1\n"
                    "[warehouse]\nseconds_per_pick = 2.5\nseconds_per_unit = 0.5\nseconds_per_stow = 4\n")
    store = Store.open(f"sqlite:///{tmp_path}/fleet.db")
    runtime = build_runtime(load_settings(path, environ={}), store)
    try:
        assert runtime.work.operators.times == OperatorTimes(2.5, 0.5, 4.0)
    finally:
        runtime.stop()
        store.close()
    with pytest.raises(ConfigError, match="warehouse.seconds_per_pick"):
        load_settings(None, environ={"FLEET_WAREHOUSE_SECONDS_PER_PICK": "0"})
