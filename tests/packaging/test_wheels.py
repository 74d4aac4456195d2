"""Levered as a user installs it: the built wheels alone, in fresh virtual environments outside the
repository, the CLI talking to a server installed the same way.

``./dev dist`` builds every wheel (from its sdist) into a temporary directory. The core goes into a
venv of its own and its ``--help`` says what to install; the command it names,
``levered plugins install levered-cli``, turns that venv into the whole CLI. ``levered-server`` goes
into a second venv. Our distributions come only from the wheels (``--no-index``); their third-party
requirements from the package index or pip's cache. Every command runs from a directory outside the
repository with no PYTHONPATH, so nothing can be imported from the sources.

Two to three minutes on 2 cores, most of it installing numpy, scipy and DuckDB: run it with
``./dev test-wheels`` (``LEVERED_TEST_WHEELS=1``); the default suite skips it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.live_server import TEST_ENV, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILTIN_GROUPS = {"auth", "config", "dashboard", "metrics", "models", "optimizations", "plugins", "serve",
                  "warehouse"}
FACTORS = json.dumps([{"name": "headline", "levels": ["Ship faster", "Build better"]},
                      {"name": "cta_text", "levels": ["Get started", "Try it free"]}])
SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' AND timestamp_utc >= @start_date"

pytestmark = [
    pytest.mark.wheels,
    pytest.mark.skipif(os.environ.get("LEVERED_TEST_WHEELS") != "1",
                       reason="slow (fresh venvs with numpy, scipy, DuckDB): ./dev test-wheels runs it"),
]


def run(argv: list[str | os.PathLike[str]], cwd: pathlib.Path, env: dict[str, str],
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, input=input, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


class Venv:
    """A fresh virtual environment outside the repository, commands run from ``cwd`` with no PYTHONPATH."""

    def __init__(self, path: pathlib.Path, cwd: pathlib.Path, home: pathlib.Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        self.bin, self.cwd = path / "bin", cwd
        self.env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(home)),
                    "LEVERED_HOME": str(home), "LEVERED_SITE_CONFIG": str(home / "no-site-config.json"),
                    "OPENBLAS_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def pip_install(self, wheels: list[pathlib.Path], *requirements: str) -> None:
        """Our wheels with --no-index, then what they require (ours found installed, the rest from the index)."""
        pip = [self.bin / "python", "-m", "pip", "install", "--quiet"]
        run([*pip, "--no-index", "--no-deps", *wheels], self.cwd, self.env)
        run([*pip, "--find-links", wheels[0].parent, *requirements], self.cwd, self.env)

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([self.bin / args[0], *args[1:]], self.cwd, {**self.env, **(env or {})}, input)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A working directory outside the repository."""
    path = tmp_path_factory.mktemp("outside")
    assert ROOT not in path.parents
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[pathlib.Path]:
    """The wheel of every distribution, built by ``./dev dist`` (each from its sdist)."""
    out = tmp_path_factory.mktemp("dist")
    run([ROOT / "dev", "dist", "--outdir", out, "--no-isolation"], ROOT, dict(os.environ))
    built = sorted(out.glob("*.whl"))
    assert len(built) == 11 and len(list(out.glob("*.tar.gz"))) == 11, sorted(p.name for p in out.iterdir())
    return built


def wheel(wheels: list[pathlib.Path], name: str) -> pathlib.Path:
    return next(w for w in wheels if w.name.startswith(name.replace("-", "_") + "-"))


@pytest.fixture(scope="module")
def cli(wheels, outside, tmp_path_factory) -> Venv:
    """The CLI as a user gets it: the core, then what its help names."""
    venv = Venv(tmp_path_factory.mktemp("cli") / "venv", outside, outside / "cli-home")
    venv.pip_install([wheel(wheels, "levered")], "levered")
    alone = venv("levered", "--help").stdout
    assert "  plugins " in alone and "login" not in alone.split("Commands:")[1].split("\n\n")[0]
    assert "`levered plugins install levered-cli`" in alone
    assert venv("levered", "--version").stdout.splitlines()[:-1] == [f"levered {version(wheels)}"]
    # What the hint says to run, with pip told where the wheels are (our names are on no index yet).
    installed = venv("levered", "plugins", "install", "levered-cli",
                     env={"PIP_FIND_LINKS": str(wheels[0].parent)}).stdout
    assert "Installed optimizations (levered-optimizations" in installed
    assert "levered-cli brings the plugins levered, levered-auth," in installed
    return venv


def version(wheels: list[pathlib.Path]) -> str:
    return wheel(wheels, "levered").name.split("-")[1]


@pytest.fixture(scope="module")
def server(wheels, outside, tmp_path_factory) -> Iterator[tuple[Venv, str, pathlib.Path]]:
    """levered-server from its wheel in its own venv, running on a free port with a fresh data dir."""
    venv = Venv(tmp_path_factory.mktemp("server") / "venv", outside, outside / "server-home")
    ours = [wheel(wheels, "levered"), wheel(wheels, "levered-server")]
    venv.pip_install(ours, "levered-server")
    data_dir, port = outside / "server-data", free_port()
    url = f"http://127.0.0.1:{port}"
    with open(outside / "server.log", "ab") as log:
        process = subprocess.Popen([venv.bin / "levered-server", "--port", str(port), "--data-dir", data_dir],
                                   cwd=outside, env={**venv.env, **TEST_ENV, "LEVERED_PASSWORD_HASH_COST": "10"},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((outside / "server.log").read_text())
                time.sleep(0.2)
        yield venv, url, data_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_cli_lists_every_builtin_group_all_loaded_from_its_venv(cli, wheels):
    commands = cli("levered", "--help").stdout.split("Commands:\n", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.startswith("  ")}
    assert BUILTIN_GROUPS <= listed and "levered-cli" not in commands
    plugins = json.loads(cli("levered", "plugins", "list", "--json").stdout)["plugins"]
    assert {p["group"] for p in plugins} == BUILTIN_GROUPS
    for plugin in plugins:
        assert plugin["status"] == "loaded" and plugin["version"] == version(wheels), plugin
        assert not plugin["location"].startswith(str(ROOT)) and not plugin["editable"], plugin
    packages = ["levered_core", *(f"levered_{group}" for group in sorted(BUILTIN_GROUPS - {"plugins"}))]
    files = cli("python", "-c", f"import {', '.join(packages)}; print({', '.join(f'{p}.__file__' for p in packages)})")
    assert all(path.startswith(str(cli.bin.parent)) for path in files.stdout.split()), files.stdout
    versions = cli("levered", "--version").stdout.splitlines()
    assert f"levered-cli {version(wheels)}" in versions and f"levered-dashboard {version(wheels)}" in versions


def test_the_server_venv_has_levered_server_and_the_server_group(server, wheels):
    venv, _, _ = server
    lines = venv("levered-server", "--version").stdout.splitlines()
    assert lines[0] == f"levered-server {version(wheels)}" and lines[-1].startswith("Python 3.")
    commands = venv("levered", "--help").stdout.split("Commands:\n", 1)[1]
    assert "  server " in commands and "  optimizations " not in commands


def test_a_user_and_an_api_key_offline_then_the_cli_against_the_server(cli, server):
    venv, url, data_dir = server
    offline = ["--data-dir", str(data_dir)]
    venv("levered", "server", "user", "create", "ada@acme.test", "--org", "Acme", "--create-org", "--password-stdin",
         *offline, input="correct horse battery\n")
    key = venv("levered", "server", "api-key", "create", "--org", "Acme", "--name", "wheels", *offline).stdout.strip()
    assert key.startswith("lvk_")
    env = {"LEVERED_API_URL": url, "LEVERED_API_KEY": key}

    def levered(*args: str) -> dict:
        return json.loads(cli("levered", *args, "--json", env=env).stdout)

    assert levered("whoami")["organization"]["name"] == "Acme"
    metric = levered("metrics", "create", "--name", "Sign-ups", "--sql", SQL, "--anonymous-id-col", "anonymous_id",
                     "--timestamp-col", "timestamp_utc")
    created = levered("optimizations", "create", "--name", "Hero", "--design-factors", FACTORS,
                      "--reward-metric-id", metric["id"])
    assert created["status"] == "live" and created["variants_count"] == 4
    served = levered("serve", created["id"], "--anonymous-id", "user-1")
    assert 0 < served["propensity"] <= 1
    results = levered("optimizations", "results", created["id"])
    assert len(results["variants"]) == 4  # its exposure reaches the warehouse behind the serve: not counted here
