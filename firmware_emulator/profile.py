"""A robot model: the physical numbers one emulated drive unit obeys.

Every default is argued in docs/emulator.md. A profile is loaded from TOML (a flat table
of the fields below, all optional) so a bench can model a particular robot without code.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ProfileError(ValueError):
    """A profile file or table that cannot describe a robot; the message lists every problem."""


class RobotProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # body
    body_length_m: float = Field(0.80, gt=0)
    body_width_m: float = Field(0.60, gt=0)
    payload_kg: float = Field(600.0, gt=0)

    # motion
    max_speed: float = Field(1.5, gt=0)  # m/s unloaded
    max_speed_loaded: float = Field(1.0, gt=0)  # m/s carrying a shelf
    acceleration: float = Field(1.0, gt=0)  # m/s^2
    deceleration: float = Field(1.0, gt=0)  # m/s^2, every planned stop
    emergency_deceleration: float = Field(2.0, gt=0)  # m/s^2, laser reacting late
    rotation_speed_deg: float = Field(90.0, gt=0)  # deg/s in place
    lift_time: float = Field(2.5, ge=0)  # s
    lower_time: float = Field(2.5, ge=0)  # s
    counter_rotation: bool = True  # turntable keeps a carried shelf's world heading

    # battery
    battery_wh: float = Field(1200.0, gt=0)
    idle_w: float = Field(30.0, ge=0)
    drive_w: float = Field(180.0, ge=0)
    drive_loaded_w: float = Field(300.0, ge=0)
    rotate_w: float = Field(120.0, ge=0)
    lift_w: float = Field(400.0, ge=0)
    charge_w: float = Field(1200.0, gt=0)
    critical_charge: float = Field(0.10, ge=0, le=1)

    # laser
    laser_range_m: float = Field(2.0, ge=0)  # 0 disables the laser (a broken scanner)
    laser_standoff_m: float = Field(0.15, ge=0)
    laser_side_margin_m: float = Field(0.02, ge=0)

    # localisation
    qr_offset_sigma_m: float = Field(0.003, ge=0)
    qr_heading_sigma_deg: float = Field(0.3, ge=0)
    qr_window_m: float = Field(0.05, gt=0)  # how far off a code the camera still reads it
    drift_per_m: float = Field(0.01, ge=0)  # dead-reckoning error per metre since the last code
    max_distance_without_code_m: float = Field(2.5, gt=0)

    # reporting
    status_interval: float = Field(1.0, gt=0)  # s between periodic status reports
    boot_time: float = Field(30.0, ge=0)  # s a reboot keeps the robot offline

    @model_validator(mode="after")
    def _consistent(self) -> "RobotProfile":
        if self.max_speed_loaded > self.max_speed:
            raise ValueError("max_speed_loaded must not exceed max_speed")
        if self.emergency_deceleration < self.deceleration:
            raise ValueError("emergency_deceleration must be at least deceleration")
        return self

    @property
    def rotation_speed(self) -> float:
        """rad/s."""
        return math.radians(self.rotation_speed_deg)

    @classmethod
    def from_table(cls, table: dict, source: str = "<table>") -> "RobotProfile":
        try:
            return cls(**table)
        except ValidationError as exc:
            lines = [f"{source}: {'.'.join(str(p) for p in err['loc']) or 'profile'}: {err['msg']}"
                     for err in exc.errors()]
            raise ProfileError("\n".join(lines)) from None

    @classmethod
    def load(cls, path: str | Path) -> "RobotProfile":
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_table(table, str(path))


DEFAULT_PROFILE = RobotProfile()
