"""`levered server start|status|api-key create|stop` as a user runs them, then the CLI against it."""

from __future__ import annotations

import json

from tests.e2e.conftest import free_port


def test_start_status_key_and_stop(tmp_path):
    from levered_core.testing import run_cli

    data_dir = str(tmp_path / "server")
    env = {"LEVERED_SITE_CONFIG": str(tmp_path / "none.json")}

    def levered(*args, extra=None):
        return run_cli(*args, home=tmp_path / "home", env={**env, **(extra or {})})

    down = levered("server", "status", "--data-dir", data_dir, "--json")
    assert down.exit_code == 0 and down.json["running"] is False
    port = free_port()
    started = levered("server", "start", "--port", str(port), "--data-dir", data_dir)
    try:
        assert started.exit_code == 0, started.stderr
        assert f"is up at http://127.0.0.1:{port}" in started.stdout
        assert "First start: created organization 'Default' and admin admin@localhost" in started.stdout
        again = levered("server", "start", "--port", str(port), "--data-dir", data_dir)
        assert again.exit_code == 1 and again.stderr.startswith("Error: cannot start the server: already running")
        status = levered("server", "status", "--data-dir", data_dir)
        assert "Status     up" in status.stdout and f"http://127.0.0.1:{port}" in status.stdout
        key = levered("server", "api-key", "create", "--data-dir", data_dir, "--name", "ci")
        assert key.exit_code == 0 and key.stdout.startswith("lvk_") and len(key.stdout.strip()) == 47
        api = {"LEVERED_API_URL": f"http://127.0.0.1:{port}", "LEVERED_API_KEY": key.stdout.strip()}
        assert levered("optimizations", "list", "--json", extra=api).json["optimizations"] == []
        unknown = levered("server", "api-key", "create", "--data-dir", data_dir, "--org", "Nope")
        assert unknown.exit_code == 1 and "no organization named 'Nope'" in unknown.stderr
    finally:
        stopped = levered("server", "stop", "--data-dir", data_dir, "--json")
    assert stopped.json["stopped"] is True
    assert json.loads(levered("server", "status", "--data-dir", data_dir, "--json").stdout)["running"] is False
    assert levered("server", "stop", "--data-dir", data_dir).stdout.startswith("No server was running")
