"""The ``levered dashboard`` command: its options, what it refuses, what it imports."""

from __future__ import annotations

import json
import subprocess
import sys

from levered_core.testing import levered_executable


def test_json_is_refused_in_one_line(levered):
    for args in (("dashboard", "--json"), ("--json", "dashboard", "--once")):
        run = levered(*args)
        assert run.exit_code == 2 and run.stdout == ""
        assert run.stderr.strip() == ("Error: --json is not supported by `levered dashboard`, a terminal UI; "
                                      "use --once for one text frame")
    assert "--json             not supported: the dashboard is a terminal UI" in levered("dashboard", "--help").stdout


def test_refresh_below_two_seconds_is_a_usage_error(levered):
    run = levered("dashboard", "--refresh", "1", "--once")
    assert run.exit_code == 2 and "minimum" not in run.stdout and "between 2 and 3600" in run.stderr


def test_without_a_terminal_it_says_to_use_once(levered):
    run = levered("dashboard")
    assert run.exit_code == 2 and "needs a terminal; use --once" in run.stderr


PROBE = """
import json, sys
sys.argv = {argv!r}
from levered_core.main import main
try:
    main(sys.argv[1:])
finally:
    with open({out!r}, "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def test_help_and_once_never_import_textual(tmp_path, server):
    env = {"LEVERED_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "LEVERED_API_URL": server.url,
           "LEVERED_API_KEY": server.api_key, "LEVERED_SITE_CONFIG": str(tmp_path / "none.json")}
    for args in (["--help"], ["dashboard", "--help"], ["dashboard", "--once"]):
        out = tmp_path / "modules.json"
        script = PROBE.format(argv=[levered_executable(), *args], out=str(out))
        subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
        modules = {name.split(".")[0] for name in json.loads(out.read_text())}
        assert "textual" not in modules, args
