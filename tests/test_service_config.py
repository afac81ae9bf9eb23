"""Settings: defaults, the TOML file, FLEET_* overrides, specific errors, and the
documentation listing every setting."""

from pathlib import Path

import pytest

from fleet.service.config import ConfigError, documented_settings, load_settings

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
