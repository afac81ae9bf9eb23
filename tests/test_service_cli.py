"""`fleet serve --config` as a user runs it: a process that prints its console URL,
answers over HTTP, and refuses a bad configuration with a message naming the setting.
`fleet demo` has its own tests (test_demo.py)."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fleet.service.auth import hash_password

ROOT = Path(__file__).resolve().parent.parent


def start(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "fleet", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def console_url(proc, stream) -> str:
    for line in stream:
        if m := re.search(r"console at (http://\S+/)", line):
            return m.group(1)
    raise AssertionError(f"no console URL printed; exit {proc.wait(5)}: {proc.stderr.read()}")


def test_serve_runs_from_a_config_file(tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text(f'[robots]\nemulated = 4\n[database]\nurl = "sqlite:///{tmp_path}/fleet.db"\n'
                      f'[console]\nport = 0\n[[users]]\nname = "ann"\nrole = "admin"\n'
                      f'password_hash = "{hash_password("pw")}"\n')
    proc = start(["serve", "--config", str(config)])
    try:
        url = console_url(proc, proc.stderr)
        health = None
        for _ in range(100):
            try:
                health = httpx.get(url + "api/health").json()
                break
            except httpx.TransportError:
                import time
                time.sleep(0.1)
        assert health is not None and health["robots"] == 4 and health["database"]
        token = httpx.post(url + "api/login", json={"username": "ann", "password": "pw"}).json()["token"]
        assert httpx.post(url + "api/robots/robot-1/pause", headers={"Authorization": f"Bearer {token}"}) \
            .status_code == 200
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=15)
    assert (tmp_path / "fleet.db").exists()
    # structured logs: one JSON object per line, the operator action among them
    entries = [json.loads(line) for line in rest.splitlines() if line.startswith("{")]
    assert any(e.get("msg") == "operator action" and (e["user"], e["action"], e["target"]) == ("ann", "pause", "robot-1")
               for e in entries), rest[-2000:]


def test_serve_refuses_a_bad_config(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[console]\nport = 99999\n")
    done = subprocess.run([sys.executable, "-m", "fleet", "serve", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "console.port" in done.stderr and str(config) in done.stderr


def test_serve_refuses_to_start_with_nobody_to_log_in(tmp_path):
    config = tmp_path / "nobody.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/fleet.db"\n')
    done = subprocess.run([sys.executable, "-m", "fleet", "serve", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no users configured" in done.stderr
