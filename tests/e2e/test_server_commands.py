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
    assert down.exit_code == 1 and down.json["running"] is False  # down: exit 1, status printed
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
        url = levered("server", "status", "--data-dir", data_dir, "-f", "value", "-c", "url")  # cliff's -f/-c
        assert url.exit_code == 0 and url.stdout == f"http://127.0.0.1:{port}\n"
        key = levered("server", "api-key", "create", "--data-dir", data_dir, "--name", "ci")
        assert key.exit_code == 0 and key.stdout.startswith("lvk_") and len(key.stdout.strip()) == 47
        api = {"LEVERED_API_URL": f"http://127.0.0.1:{port}", "LEVERED_API_KEY": key.stdout.strip()}
        assert levered("optimizations", "list", "--json", extra=api).json["optimizations"] == []
        unknown = levered("server", "api-key", "create", "--data-dir", data_dir, "--org", "Nope")
        assert unknown.exit_code == 2 and "no organization named 'Nope'" in unknown.stderr  # found locally
    finally:
        stopped = levered("server", "stop", "--data-dir", data_dir, "--json")
    assert stopped.json["stopped"] is True
    assert json.loads(levered("server", "status", "--data-dir", data_dir, "--json").stdout)["running"] is False
    down = levered("server", "status", "--data-dir", data_dir)
    assert down.exit_code == 1 and "Status     down" in down.stdout
    assert "Warehouse  -" in down.stdout and "None" not in down.stdout
    assert levered("server", "stop", "--data-dir", data_dir).stdout.startswith("No server was running")


def _levered_in(cwd, *args, home, input=""):
    """`levered` run from `cwd` (relative --data-dir), stdin not a terminal."""
    import os
    import subprocess

    from levered_core.testing import NO_SITE_CONFIG, CliRun, levered_executable

    env = {**os.environ, "LEVERED_HOME": str(home), "LEVERED_SITE_CONFIG": NO_SITE_CONFIG}
    for name in ("LEVERED_API_KEY", "LEVERED_API_URL", "LEVERED_DATA_DIR", "LEVERED_DATABASE_URL"):
        env.pop(name, None)
    done = subprocess.run([levered_executable(), *args], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=120, check=False)
    return CliRun(tuple(args), done.returncode, done.stdout, done.stderr)


def test_hints_name_the_data_dir_and_api_key_create_needs_a_database(tmp_path):
    home = tmp_path / "home"
    absolute = tmp_path / "rel" / "server"
    port = str(free_port())
    started = _levered_in(tmp_path, "server", "start", "--port", port, "--data-dir", "rel/server", home=home)
    try:
        assert started.exit_code == 0, started.stderr
        lines = started.stdout.splitlines()
        # Every hint names the (absolute) data dir: following them reaches this server.
        assert f"Data dir  {absolute}" in lines
        assert f"  export LEVERED_API_KEY=$(levered server api-key create --data-dir {absolute})" in lines
        assert f"Stop it with: levered server stop --data-dir {absolute}" in lines
        # First start: the login with the one-time password comes first, the API key second.
        login = lines.index(f"  levered login --api-url http://127.0.0.1:{port}")
        assert lines[login - 1].startswith("Log in as admin@localhost with the one-time password")
        assert login < lines.index("Or, for scripts and CI, use an API key:")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        key = _levered_in(elsewhere, "server", "api-key", "create", "--data-dir", str(absolute), home=home)
        assert key.exit_code == 0 and key.stdout.startswith("lvk_"), key.stderr
        status = _levered_in(elsewhere, "server", "status", "--data-dir", str(absolute), home=home)
        assert status.exit_code == 0 and "Status     up" in status.stdout
        # Without --data-dir: the default dir has no database; refused, nothing created.
        bare = _levered_in(elsewhere, "server", "api-key", "create", home=home)
        assert bare.exit_code == 2 and bare.stdout == ""
        assert bare.stderr.startswith(f"Error: no Levered server database in {home / 'server'} yet: pass the "
                                      "--data-dir (and --database-url) the server was started with")
        assert "add --init to create one" in bare.stderr and "Traceback" not in bare.stderr
        assert not (home / "server" / "levered.sqlite3").exists()
        nobody = _levered_in(elsewhere, "server", "stop", home=home)
        assert nobody.stdout.startswith("No server was running")
    finally:
        stopped = _levered_in(tmp_path, "server", "stop", "--data-dir", str(absolute), home=home)
    assert stopped.stdout.startswith("Server stopped"), stopped.stderr
    # --init is the explicit way to create a database offline (what bench/ and tests do in Python).
    fresh = tmp_path / "fresh"
    made = _levered_in(tmp_path, "server", "api-key", "create", "--data-dir", "fresh", "--init", home=home)
    assert made.exit_code == 0 and made.stdout.startswith("lvk_"), made.stderr
    assert (fresh / "levered.sqlite3").is_file()


def test_start_on_the_default_dir_prints_bare_hints(tmp_path):
    home = tmp_path / "home"
    port = str(free_port())
    started = _levered_in(tmp_path, "server", "start", "--port", port, home=home)
    try:
        assert started.exit_code == 0, started.stderr
        assert "  export LEVERED_API_KEY=$(levered server api-key create)" in started.stdout.splitlines()
        assert started.stdout.rstrip().endswith("Stop it with: levered server stop")
    finally:
        assert _levered_in(tmp_path, "server", "stop", home=home).stdout.startswith("Server stopped")


def test_user_create_without_a_terminal_asks_for_password_stdin(tmp_path):
    home = tmp_path / "home"
    args = ("server", "user", "create", "ada@acme.test", "--org", "Acme", "--create-org",
            "--data-dir", str(tmp_path / "server"))
    # A data dir without a database (a typo): refused before the password is asked for.
    nodb = _levered_in(tmp_path, *args, "--password-stdin", home=home, input="s3cret-Passw0rd\n")
    assert nodb.exit_code == 2 and nodb.stdout == ""
    assert nodb.stderr.startswith(f"Error: no Levered server database in {tmp_path / 'server'} yet: pass the "
                                  "--data-dir (and --database-url) the server was started with")
    assert "add --init to create one" in nodb.stderr and "Traceback" not in nodb.stderr
    assert not (tmp_path / "server").exists()
    args += ("--init",)
    refused = _levered_in(tmp_path, *args, home=home)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith("Error: no terminal to ask for the password: pipe it in with --password-stdin")
    assert "Warning" not in refused.stderr and "EOFError" not in refused.stderr
    assert "please report" not in refused.stderr
    made = _levered_in(tmp_path, *args, "--password-stdin", home=home, input="s3cret-Passw0rd\n")
    assert made.exit_code == 0, made.stderr
    assert made.stdout.strip() == "Created user ada@acme.test in organization Acme"


def test_demo_start_hints_name_the_data_dir(tmp_path, monkeypatch):
    from levered_server.cli import _describe_start
    from levered_server.settings import Settings

    monkeypatch.delenv("LEVERED_DATA_DIR", raising=False)
    monkeypatch.setenv("LEVERED_HOME", str(tmp_path / "home"))
    settings = Settings(data_dir=tmp_path / "demo")
    status = {"version": "0.1.0", "url": "http://127.0.0.1:3321", "pid": 1, "database": "sqlite",
              "data_dir": str(settings.data_dir),
              "demo": {"organization": "Demo", "metric": "m", "optimizations": [1], "pid": 2,
                       "api_key": "lvk_x"}}
    text = _describe_start(status, settings)
    assert text.splitlines()[-1] == f"Stop it with: levered server stop --data-dir {tmp_path / 'demo'}"
    assert "LEVERED_API_KEY=lvk_x" in text and "api-key create" not in text
    default = Settings(data_dir=tmp_path / "home" / "server")
    assert _describe_start({**status, "demo": None}, default).splitlines()[-1] == \
        "Stop it with: levered server stop"


def test_foreground_demo_seeds_the_demo_and_stops_it_with_the_server(tmp_path):
    import os
    import signal
    import subprocess
    import time

    from levered_core.testing import NO_SITE_CONFIG, levered_executable

    data_dir = tmp_path / "server"
    port = str(free_port())
    env = {**os.environ, "LEVERED_HOME": str(tmp_path / "home"), "LEVERED_SITE_CONFIG": NO_SITE_CONFIG}
    server = subprocess.Popen([levered_executable(), "server", "start", "--foreground", "--demo", "--port", port,
                               "--data-dir", str(data_dir)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    state = data_dir / "demo.json"
    try:
        deadline = time.monotonic() + 90
        while not state.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.exists(), server.stderr.read() if server.poll() is not None else "no demo.json"
        demo = json.loads(state.read_text())
        assert demo["organization"] == "Demo" and len(demo["optimizations"]) == 2
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "Demo: organization 'Demo'" in out and f"LEVERED_API_URL=http://127.0.0.1:{port}" in out
    assert "Traceback" not in err
    assert not state.exists()  # the simulator was stopped with the server
    deadline = time.monotonic() + 10
    while _running(demo["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(demo["pid"])


def _running(pid):
    """Whether a process runs (a zombie left to an init that does not reap does not)."""
    import pathlib

    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False
