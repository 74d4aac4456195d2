"""Running the server like a user: `levered-server` under uvicorn, start/stop/status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from levered_server import control
from levered_server.bootstrap import create_api_key
from levered_server.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_start_status_stop_in_the_background(tmp_path):
    settings = Settings(data_dir=tmp_path, port=free_port())
    assert control.status(tmp_path)["running"] is False
    state = control.start_background(settings)
    try:
        assert state["running"] is True and state["url"] == f"http://127.0.0.1:{settings.port}"
        assert state["version"] == "0.1.0" and state["database"].startswith("sqlite:///")
        assert state["warehouse"].startswith("duckdb (embedded")
        key = create_api_key(data_dir=tmp_path)  # while the server runs
        status, me = _get(f"{state['url']}/api/v2/me", key["secret"])
        assert status == 200 and me["organization"]["name"] == "Default"
        status, err = _get(f"{state['url']}/api/v2/me")
        assert status == 401 and err["error"]["code"] == "unauthorized"
        deadline = time.monotonic() + 5  # the request line is logged after the response
        while err["meta"]["request_id"] not in (tmp_path / control.LOG_FILE).read_text() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        log = (tmp_path / control.LOG_FILE).read_text()
        assert "first start" in log and err["meta"]["request_id"] in log
    finally:
        assert control.stop(tmp_path) is True
    assert control.status(tmp_path)["running"] is False
    assert not control.state_path(tmp_path).exists()
    assert control.stop(tmp_path) is False


def test_console_script_flags_and_clean_shutdown(tmp_path):
    port = free_port()
    env = {**os.environ, "LEVERED_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "levered_server", "--port", str(port),
                             "--data-dir", str(tmp_path / "d")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and body.items() >= {"status": "ok", "version": "0.1.0"}.items()
        assert (tmp_path / "d" / "levered.sqlite3").exists()
        assert not (tmp_path / "home").exists()  # --data-dir wins over LEVERED_HOME
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit status -15)
    assert proc.returncode in (0, -signal.SIGTERM), out.decode()[-2000:]
    assert b"Application shutdown complete" in out and b"Traceback" not in out


def test_default_data_dir_follows_levered_home(tmp_path, monkeypatch):
    from levered_server.settings import settings_from_env

    monkeypatch.setenv("LEVERED_HOME", str(tmp_path))
    assert settings_from_env().data_dir == tmp_path / "server"
    s = settings_from_env({"LEVERED_PORT": "4000", "LEVERED_RATE_LIMIT_PER_MINUTE": "0",
                           "LEVERED_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert (s.port, s.rate_limit_per_minute, s.trusted_proxies) == (4000, 0,
                                                                     ("10.0.0.0/8", "::1"))
    assert s.host == "127.0.0.1"


def test_the_thompson_scale_setting_reaches_the_policy_and_is_range_checked():
    from levered_server.services.versions import policy_settings
    from levered_server.settings import settings_from_env

    assert policy_settings(settings_from_env({})).thompson_scale == 0.6
    assert policy_settings(settings_from_env({"LEVERED_THOMPSON_SCALE": "1"})).thompson_scale == 1.0
    for bad in ("0", "-1", "5", "wide"):
        with pytest.raises(ValueError, match="LEVERED_THOMPSON_SCALE"):
            settings_from_env({"LEVERED_THOMPSON_SCALE": bad})
