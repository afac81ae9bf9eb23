"""The service's configuration: one TOML file, every setting defaulted, each overridable by
an environment variable (FLEET_<SECTION>_<KEY>), validated by pydantic before anything
starts, so a typo stops the service with the setting's name instead of a crash hours later.

docs/config.md lists every setting; keep it in step with the models here.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["viewer", "operator", "admin"]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and each bad setting."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MapSettings(_Section):
    #: A shipped map name (demo, medium, large) or a path to a map TOML file.
    name: str = "demo"


class RobotSettings(_Section):
    #: Emulated robots the service drives over the in-process link (0 = none: real robots only).
    emulated: int = Field(default=12, ge=0, le=5000)
    #: Random shelf trips for idle robots, until the scheduler plugs in.
    shelf_moves: bool = True
    seed: int = 0


class BrokerSettings(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    #: VDA 5050 interface name (topic prefix).
    interface: str = "uagv"

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        if not v.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return v


class DatabaseSettings(_Section):
    #: SQLAlchemy URL: sqlite:///fleet.db (embedded default) or postgresql+psycopg://user@host/db.
    url: str = "sqlite:///fleet.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return v


class ConsoleSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Minimum seconds between two live updates sent to one browser.
    update_interval_s: float = Field(default=0.25, gt=0, le=10)
    #: Seconds a login session lasts.
    session_s: float = Field(default=12 * 3600, gt=0)


class User(_Section):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    #: argon2 hash of the password (`python -m fleet.service.auth hash`); absent = no login.
    password_hash: str | None = None
    #: sha256 hex of an API token (`python -m fleet.service.auth token`); absent = none.
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class Thresholds(_Section):
    #: A WARNING error that lasts this long raises an alarm.
    warning_alarm_s: float = Field(default=30.0, gt=0)
    #: Below this charge (0..1) a robot raises a low-battery alarm.
    low_charge: float = Field(default=0.15, ge=0, le=1)


class RuntimeSettings(_Section):
    #: Seconds of simulated time per control cycle.
    cycle_s: float = Field(default=0.25, gt=0, le=5)
    #: Simulated seconds per wall second (1 = real time).
    speed: float = Field(default=1.0, gt=0, le=1000)


class Settings(_Section):
    map: MapSettings = MapSettings()
    robots: RobotSettings = RobotSettings()
    broker: BrokerSettings = BrokerSettings()
    database: DatabaseSettings = DatabaseSettings()
    console: ConsoleSettings = ConsoleSettings()
    users: list[User] = []
    thresholds: Thresholds = Thresholds()
    runtime: RuntimeSettings = RuntimeSettings()

    @model_validator(mode="after")
    def _unique_users(self) -> "Settings":
        names = [u.name for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError(f"user names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return self


#: Sections whose keys may be overridden one by one from the environment.
_SECTIONS = [name for name, f in Settings.model_fields.items() if name != "users"]


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the file, then FLEET_<SECTION>_<KEY> variables (FLEET_USERS takes a
    JSON list). Raises ConfigError naming the file and each bad setting."""
    environ = os.environ if environ is None else environ
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for section in _SECTIONS:
        model = Settings.model_fields[section].annotation
        for key in model.model_fields:
            var = f"FLEET_{section}_{key}".upper()
            if var in environ:
                target = data.setdefault(section, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{source}: [{section}] must be a table")
                target[key] = environ[var]
    if "FLEET_USERS" in environ:
        try:
            data["users"] = json.loads(environ["FLEET_USERS"])
        except ValueError as exc:
            raise ConfigError(f"FLEET_USERS: not valid JSON: {exc}") from None
    unknown = sorted(k for k in environ if k.startswith("FLEET_") and k not in _known_variables())
    if unknown:
        raise ConfigError(f"unknown environment setting(s): {', '.join(unknown)}")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _known_variables() -> set[str]:
    names = {"FLEET_USERS"}
    for section in _SECTIONS:
        for key in Settings.model_fields[section].annotation.model_fields:
            names.add(f"FLEET_{section}_{key}".upper())
    return names


def documented_settings() -> list[tuple[str, str, object]]:
    """(setting, environment variable, default) for every setting: docs/config.md is
    checked against this so the documentation cannot drift."""
    rows = []
    for section in _SECTIONS:
        model = Settings.model_fields[section].annotation
        for key, f in model.model_fields.items():
            rows.append((f"{section}.{key}", f"FLEET_{section}_{key}".upper(), f.default))
    return rows
