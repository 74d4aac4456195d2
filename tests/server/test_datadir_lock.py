"""One server per data directory: real `levered-server` / `levered server start` processes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from levered_server import datadir_lock
from tests.live_server import TEST_ENV, free_port

SERVER = str(pathlib.Path(sys.executable).with_name("levered-server"))


def _env(tmp_path: pathlib.Path) -> dict[str, str]:
    env = {**os.environ, **TEST_ENV, "LEVERED_HOME": str(tmp_path / "home"),
           "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json")}
    for name in ("LEVERED_DATABASE_URL", "LEVERED_DATA_DIR", "LEVERED_SECRET_KEY"):
        env.pop(name, None)
    return env


def _launch(data_dir: pathlib.Path, port: int, env: dict[str, str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([SERVER, "--port", str(port), "--data-dir", str(data_dir)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if json.loads(resp.read())["replica"]["pid"] == proc.pid:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)


def _refused(result: subprocess.CompletedProcess[str], data_dir: pathlib.Path, pid: int) -> str:
    """The refusal: exit 1, one line naming the data dir and the holder's PID, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert str(data_dir) in lines[0] and f"PID {pid}" in lines[0]
    return lines[0]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_second_levered_server_is_refused_and_a_crash_frees_the_dir(tmp_path):
    data_dir, env, log = tmp_path / "data", _env(tmp_path), tmp_path / "first.log"
    port = free_port()
    first = _launch(data_dir, port, env, log)
    try:
        state, logged = (data_dir / "server.json").read_bytes(), log.read_bytes()
        assert (data_dir / "server.lock").read_text().strip() == str(first.pid)
        second = subprocess.run([SERVER, "--port", str(free_port()), "--data-dir", str(data_dir)],
                                env=env, capture_output=True, text=True, timeout=60)
        line = _refused(second, data_dir, first.pid)
        assert line == f"levered-server: already running: data dir {data_dir} is in use by the server " \
                       f"with PID {first.pid}"
        assert (data_dir / "server.json").read_bytes() == state
        # The running server may log on (its own background work); nothing of the refused one.
        after = log.read_bytes()
        assert after.startswith(logged) and b"already running" not in after
        assert first.poll() is None
        # kill -9: the kernel drops the lock with the process; a restart just works.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        again = _launch(data_dir, port, env, tmp_path / "again.log")
        try:
            assert (data_dir / "server.lock").read_text().strip() == str(again.pid)
            assert json.loads((data_dir / "server.json").read_text())["pid"] == again.pid
        finally:
            _stop(again)
    finally:
        _stop(first)


def test_levered_server_start_is_refused_and_offline_commands_work(tmp_path):
    from levered_core.testing import run_cli

    data_dir, env = tmp_path / "data", _env(tmp_path)
    first = _launch(data_dir, free_port(), env, tmp_path / "first.log")
    try:
        state = (data_dir / "server.json").read_bytes()
        (data_dir / "server.log").write_text("the running server's log\n")

        def levered(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
            done = run_cli(*args, home=tmp_path / "home", env=TEST_ENV, input=input)
            return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)

        for mode in ([], ["--foreground"]):  # another port: the lock, not the port, refuses it
            refused = levered("server", "start", "--port", str(free_port()), "--data-dir", str(data_dir), *mode)
            assert _refused(refused, data_dir, first.pid).startswith(
                "Error: cannot start the server: already running: data dir")
        assert (data_dir / "server.json").read_bytes() == state
        assert (data_dir / "server.log").read_text() == "the running server's log\n"
        key = levered("server", "api-key", "create", "--data-dir", str(data_dir))
        assert key.returncode == 0 and key.stdout.startswith("lvk_"), key.stderr
        user = levered("server", "user", "create", "ada@acme.test", "--data-dir", str(data_dir),
                       "--password-stdin", input="correct horse battery\n")
        assert user.returncode == 0, user.stderr
        assert levered("server", "status", "--data-dir", str(data_dir)).returncode == 0
        assert levered("server", "stop", "--data-dir", str(data_dir)).returncode == 0
        first.wait(timeout=30)
    finally:
        _stop(first)


def test_the_lock_in_one_process(tmp_path):
    lock = datadir_lock.acquire(tmp_path)
    try:
        datadir_lock.check_free(tmp_path / "elsewhere")
        with pytest.raises(datadir_lock.DataDirInUse) as refused:
            datadir_lock.check_free(tmp_path)  # another open file description: refused too
        assert refused.value.pid == os.getpid() and str(tmp_path) in str(refused.value)
        with pytest.raises(datadir_lock.DataDirInUse):
            datadir_lock.acquire(tmp_path, wait=0)
    finally:
        lock.release()
    datadir_lock.check_free(tmp_path)
    datadir_lock.acquire(tmp_path, wait=0).release()
