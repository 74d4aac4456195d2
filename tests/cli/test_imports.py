"""The import budget: what ``--version``, ``--help`` and ``config get`` may load.

Start-up time is measured by ``bench/startup``; this test pins its cause, the modules
imported, which does not flake with machine load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from levered_core.testing import levered_executable

HEAVY = {"requests", "oauthlib", "numpy", "yaml", "rich", "keyring", "cmd2", "urllib3", "textual", "levered_server"}
PROBE = """
import json, sys
sys.argv = {argv!r}
from levered_core.main import main
try:
    code = main(sys.argv[1:])
finally:
    with open({out!r}, "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def imported_by(tmp_path, home, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    script = PROBE.format(argv=[levered_executable(), *args], out=str(out))
    env = {"LEVERED_HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)  # cache warm
    return {name.split(".")[0] for name in json.loads(out.read_text())}


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("config", "--help")])
def test_version_and_help_import_neither_cliff_nor_plugins(tmp_path, home, args):
    modules = imported_by(tmp_path, home, *args)
    assert not modules & (HEAVY | {"cliff", "stevedore", "prettytable", "levered_config"})


def test_config_get_imports_no_http_oauth_yaml_or_tui(tmp_path, home):
    modules = imported_by(tmp_path, home, "config", "get", "output")
    assert "levered_config" in modules and "cliff" in modules
    assert not modules & HEAVY, modules & HEAVY
    assert not {"levered_optimizations", "levered_auth", "levered_dashboard"} & modules


def test_auth_status_reads_the_auth_files_without_http(tmp_path, home):
    modules = imported_by(tmp_path, home, "auth", "status")
    assert "levered_auth" in modules
    assert not modules & HEAVY, modules & HEAVY
