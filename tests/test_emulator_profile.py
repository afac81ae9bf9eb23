"""Robot profiles: documented defaults, TOML loading, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator_kit import Bench, job, line, trapezoid_time
from firmware_emulator.profile import DEFAULT_PROFILE, ProfileError, RobotProfile
from drivers.events import JobFinished
from maps import Cell, Heading


def test_defaults_are_the_documented_ones() -> None:
    p = DEFAULT_PROFILE
    assert (p.max_speed, p.max_speed_loaded, p.acceleration, p.deceleration) == (1.5, 1.0, 1.0, 1.0)
    assert (p.rotation_speed_deg, p.lift_time, p.lower_time, p.payload_kg) == (90.0, 2.5, 2.5, 600.0)
    assert p.counter_rotation
    doc = (Path(__file__).parent.parent / "docs" / "emulator.md").read_text()
    for name in RobotProfile.model_fields:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/emulator.md"


def test_a_profile_loads_from_toml_and_changes_the_robot(tmp_path: Path) -> None:
    path = tmp_path / "fast.toml"
    path.write_text("max_speed = 2.0\nmax_speed_loaded = 1.2\nacceleration = 0.5\n")
    profile = RobotProfile.load(path)
    assert (profile.max_speed, profile.acceleration, profile.deceleration) == (2.0, 0.5, 1.0)
    bench = Bench()
    bench.world.add_robot("r", Cell(1, 2), Heading.EAST, profile)
    bench.world.send_job("r", job("j", line(1, 2, 11, 2)))
    bench.run(20)
    expected = trapezoid_time(10, 2.0, 0.5, 1.0)
    assert expected - 1e-9 <= bench.last(JobFinished).time <= expected + bench.world.dt + 1e-9


@pytest.mark.parametrize("text, message", [
    ("max_speed = -1\n", "max_speed"),
    ("top_speed = 2\n", "top_speed"),
    ("max_speed = 1.0\nmax_speed_loaded = 1.2\n", "must not exceed"),
    ("max_speed = [\n", "not valid TOML"),
    ("counter_rotation = 'maybe'\n", "counter_rotation"),
])
def test_bad_profiles_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as info:
        RobotProfile.load(path)
    assert str(path) in str(info.value)
