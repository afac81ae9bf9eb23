"""`fleet emulate --mqtt`: the emulated robots as VDA 5050 vehicles on a real broker."""

from __future__ import annotations

import json
import time

from fleet.cli import main

from shared_data import REPO_ROOT

TINY = str(REPO_ROOT / "tests" / "data" / "tiny.toml")


def test_emulate_mqtt_runs_conformant_vehicles_that_go_offline_at_the_end(mqtt_url, record_broker, vda5050_schemas,
                                                                         capsys):
    recorder = record_broker(mqtt_url, "cli/#")
    code = main(["emulate", "--mqtt", mqtt_url, "--map", TINY, "--robots", "2", "--duration", "2",
                 "--interface", "cli", "--manufacturer", "acme", "--visualization", "0.5", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["robots"] == 2 and summary["collisions"] == 0
    time.sleep(0.3)
    messages = recorder.snapshot()
    assert recorder.problems(vda5050_schemas) == []
    for robot in ("robot-1", "robot-2"):
        connection = [json.loads(m.payload)["connectionState"] for m in messages
                      if m.topic == f"cli/v2/acme/{robot}/connection"]
        assert connection[0] == "ONLINE" and connection[-1] == "OFFLINE"
        kinds = {m.topic.rsplit("/", 1)[-1] for m in messages if f"/acme/{robot}/" in m.topic}
        assert {"connection", "factsheet", "state", "visualization"} <= kinds


def test_emulate_mqtt_refuses_a_bad_broker_url(capsys):
    code = main(["emulate", "--mqtt", "http://example", "--map", TINY, "--robots", "1"])
    assert code == 2
    assert "scheme must be mqtt:// or mqtts://" in capsys.readouterr().err


def test_emulate_mqtt_refuses_speed_and_wander(capsys):
    code = main(["emulate", "--mqtt", "mqtt://127.0.0.1:1", "--map", TINY, "--robots", "1", "--wander"])
    assert code == 2
    assert "with --mqtt a master drives the robots in wall time" in capsys.readouterr().err
