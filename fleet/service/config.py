"""The service's configuration: one TOML file, every setting defaulted, each overridable by
an environment variable (FLEET_<SECTION>_<KEY>), validated by pydantic before anything
starts, so a typo stops the service with the setting's name instead of a crash hours later.

docs/config.md lists every setting; keep it in step with the models here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from drivers.serial.link import LinkSettings

Role = Literal["viewer", "operator", "admin"]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and each bad setting."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MapSettings(_Section):
    #: A shipped map name (demo, medium, large) or a path to a map TOML file.
    name: str = "demo"


class RobotSettings(_Section):
    #: Emulated robots the service drives over the in-process link. None: 12 when no real
    #: link is configured, else 0, so robots that exist only in memory never reserve cells
    #: on a real floor unless asked for.
    emulated: int | None = Field(default=None, ge=0, le=5000)
    seed: int = 0


#: Emulated robots when `robots.emulated` is not set and no real link is configured.
DEFAULT_EMULATED = 12

_ROBOT_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class BrokerSettings(_Section):
    """The MQTT broker whose VDA 5050 vehicles the service drives (drivers/vda5050)."""

    #: Connect and drive the broker's VDA 5050 vehicles.
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    #: TLS on the URL's port; mqtts:// implies it.
    tls: bool = False
    #: CA bundle that signed the broker's certificate (None: the system's).
    ca_file: str | None = None
    #: Client certificate and key, for brokers that require one.
    cert_file: str | None = None
    key_file: str | None = None
    #: Skip the broker host name check (test brokers only).
    tls_insecure: bool = False
    #: VDA 5050 interface name (first topic level).
    interface: str = Field(default="uagv", pattern=r"^[^/#+]+$")
    #: Topic levels before the interface name (some cloud brokers impose one).
    topic_prefix: str = Field(default="", pattern=r"^[^#+]*$")
    #: Drive only these vehicles (serial numbers, which become robot ids) of `manufacturer`;
    #: empty: adopt every vehicle that comes ONLINE under the interface.
    vehicles: list[str] = []
    manufacturer: str | None = None
    #: A vehicle whose state is older than this is presumed lost.
    state_timeout_s: float = Field(default=35.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        from drivers.vda5050.mqtt import BrokerConfig

        BrokerConfig.from_url(v)  # raises ValueError naming what is wrong with it
        return v

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @field_validator("vehicles")
    @classmethod
    def _vehicle_ids(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if not re.match(_ROBOT_ID, s)]
        if bad:
            raise ValueError(f"not a serial number: {bad}")
        if len(v) != len(set(v)):
            raise ValueError(f"vehicles listed twice: {sorted(s for s in set(v) if v.count(s) > 1)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "BrokerSettings":
        if self.vehicles and not self.manufacturer:
            raise ValueError("broker.vehicles needs broker.manufacturer (a vehicle is manufacturer/serial number)")
        if self.manufacturer and not self.vehicles:
            raise ValueError("broker.manufacturer is used only with broker.vehicles")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("broker.cert_file and broker.key_file go together")
        return self


class SerialRobotSettings(_Section):
    """One robot on a serial line (drivers/serial): USB-UART, RS-485 or a terminal server."""

    id: str = Field(pattern=_ROBOT_ID)
    #: Any pyserial URL: /dev/ttyUSB0, a pseudo-terminal, socket://HOST:PORT, rfc2217://HOST:PORT, loop://.
    port: str = Field(min_length=1)
    baudrate: int = Field(default=115200, gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 1.5, 2] = 1
    rtscts: bool = False
    xonxoff: bool = False

    @field_validator("port")
    @classmethod
    def _pyserial_url(cls, v: str) -> str:
        """Only what pyserial can open: a path, or a scheme it has a handler for (with a
        host and port where the scheme needs them)."""
        if "://" not in v:
            return v
        scheme = v.split("://", 1)[0]
        known = re.match(r"^[a-z0-9]+$", scheme) and importlib.util.find_spec(f"serial.urlhandler.protocol_{scheme}")
        if not known:
            raise ValueError(f"{v!r}: pyserial knows no URL scheme {scheme!r}")
        if scheme in ("socket", "rfc2217"):
            parts = urlsplit(v)
            try:
                port = parts.port
            except ValueError:
                port = None
            if not parts.hostname or port is None:
                raise ValueError(f"{v!r}: {scheme}:// needs HOST:PORT")
        return v

    def options(self) -> dict[str, object]:
        """serial_for_url's keyword options (drivers.serial.port.PortSettings.options)."""
        return {"bytesize": self.bytesize, "parity": self.parity, "stopbits": self.stopbits,
                "rtscts": self.rtscts, "xonxoff": self.xonxoff}


class SerialSettings(_Section):
    """Robots on serial lines and the protocol's timers (docs/serial-protocol.md)."""

    robots: list[SerialRobotSettings] = []
    #: The robot stops after this long without a frame from the service.
    watchdog_s: float = 1.0
    #: How often a robot sends STATUS.
    status_interval_s: float = 0.2
    #: The service sends HEARTBEAT after this long without sending anything else.
    heartbeat_s: float = 0.25
    #: A robot is presumed lost after this long without a valid frame.
    lost_after_s: float = 1.0

    @model_validator(mode="after")
    def _consistent(self) -> "SerialSettings":
        ids = [r.id for r in self.robots]
        if len(ids) != len(set(ids)):
            raise ValueError(f"serial robot ids listed twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        self.link_settings()  # the link's own rules (heartbeat < watchdog, ...), raising ValueError
        return self

    def link_settings(self) -> LinkSettings:
        """drivers.serial.link.LinkSettings from these settings."""
        from drivers.serial.link import LinkSettings

        return LinkSettings(watchdog=self.watchdog_s, status_interval=self.status_interval_s,
                            heartbeat_interval=self.heartbeat_s, lost_after=self.lost_after_s)


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


class WarehouseSettings(_Section):
    """The scheduler's floor: who works the stations, and generated demand for demos."""

    #: Simulated people work every station no person has taken over at the console's
    #: terminal view; False: only people work the stations.
    simulated_operators: bool = True
    #: Mean seconds a simulated person takes for one pick pair, each further unit of a
    #: pick, and one put; a site sets them to its people's measured pace.
    seconds_per_pick: float = Field(default=6.0, gt=0, le=3600)
    seconds_per_unit: float = Field(default=1.0, ge=0, le=3600)
    seconds_per_stow: float = Field(default=10.0, gt=0, le=3600)
    #: Generated customer orders per hour handed to the scheduler (0: only the API's).
    orders_per_hour: float = Field(default=0.0, ge=0, le=100000)
    #: Generated inbound notes per hour (0: only the API's).
    inbound_notes_per_hour: float = Field(default=0.0, ge=0, le=1000)
    #: Fleet hours of generated orders and notes, from the service's start.
    generated_hours: float = Field(default=8.0, gt=0, le=168)
    #: Seconds between two rounds of orders released to the pick ports' put walls (fewer,
    #: larger rounds batch better; more frequent ones start work sooner).
    release_every_s: float = Field(default=30.0, gt=0, le=3600)
    #: A shelf leaving a port takes the home of a shelf now at a port when that home is
    #: nearer the port (the two swap homes): shelves in demand gather near the stations.
    slotting: bool = False
    #: Storage cells the generated floor leaves without a shelf (the last in row order),
    #: so that operators can move shelves (POST /api/shelves/{id}/move).
    spare_storage_cells: int = Field(default=0, ge=0, le=100000)


class Settings(_Section):
    map: MapSettings = MapSettings()
    robots: RobotSettings = RobotSettings()
    broker: BrokerSettings = BrokerSettings()
    serial: SerialSettings = SerialSettings()
    database: DatabaseSettings = DatabaseSettings()
    console: ConsoleSettings = ConsoleSettings()
    users: list[User] = []
    thresholds: Thresholds = Thresholds()
    runtime: RuntimeSettings = RuntimeSettings()
    warehouse: WarehouseSettings = WarehouseSettings()

    @model_validator(mode="after")
    def _unique_users(self) -> "Settings":
        names = [u.name for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError(f"user names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return self

    @model_validator(mode="after")
    def _links(self) -> "Settings":
        real = self.real_links
        if self.robots.emulated is None:
            self.robots.emulated = 0 if real else DEFAULT_EMULATED
        if real and self.runtime.speed != 1:
            raise ValueError("runtime.speed must be 1 with robots on real links: they live in wall time")
        both = sorted(set(self.broker.vehicles) & {r.id for r in self.serial.robots}) if self.broker.enabled else []
        if both:
            raise ValueError(f"robot id(s) {both} both in broker.vehicles and serial.robots")
        return self

    @property
    def real_links(self) -> bool:
        """Robots on a wire (MQTT, serial) are configured: the service runs in wall time."""
        return self.broker.enabled or bool(self.serial.robots)


#: Sections whose keys may be overridden one by one from the environment.
_SECTIONS = [name for name, f in Settings.model_fields.items() if name != "users"]


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the file, then FLEET_<SECTION>_<KEY> variables (FLEET_USERS and the
    list settings take JSON). Raises ConfigError naming the file and each bad setting."""
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
                target[key] = _from_environment(var, environ[var], model.model_fields[key].annotation)
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
        problems = "; ".join(": ".join(filter(None, (".".join(str(p) for p in e["loc"]), e["msg"])))
                             for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _from_environment(var: str, value: str, annotation: object) -> object:
    """A list setting (serial.robots, broker.vehicles) comes as JSON, like FLEET_USERS;
    scalars go to pydantic as text, which converts them."""
    if get_origin(annotation) is not list:
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{var}: not valid JSON: {exc}") from None


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
