"""Helpers for testing levered plugins: run the real ``levered`` and read what it printed.

Part of the public plugin API (``docs/plugins.md``)::

    from levered_core.testing import run_cli

    def test_hello(tmp_path):
        run = run_cli("hello", "list", "--json", home=tmp_path)
        assert run.exit_code == 0
        assert run.json["greetings"]
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class CliRun:
    """The outcome of one ``levered`` process."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        """The decoded stdout (fails the test with the output if it is not JSON)."""
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"stdout of levered {' '.join(self.args)} is not JSON: {exc}\n"
                                 f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}") from None


def levered_executable() -> str:
    """Return the ``levered`` script of the running interpreter's environment."""
    beside = pathlib.Path(sys.executable).with_name("levered")
    if beside.exists():
        return str(beside)
    found = shutil.which("levered")
    if found is None:
        raise RuntimeError("no `levered` executable: install levered into this environment")
    return found


def run_cli(
    *args: str,
    home: os.PathLike[str] | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> CliRun:
    """Run the installed ``levered`` as a subprocess.

    :param args: the command line after ``levered``.
    :param home: the ``LEVERED_HOME`` to use (keep tests away from the real one).
    :param env: extra environment variables (they override the inherited ones).
    :param input: text for stdin; without it stdin is empty (not a terminal).
    :returns: exit code, stdout and stderr.
    """
    full_env = dict(os.environ)
    full_env.pop("LEVERED_API_KEY", None)
    full_env.pop("LEVERED_API_URL", None)
    full_env.pop("LEVERED_ENV", None)
    if home is not None:
        full_env["LEVERED_HOME"] = str(home)
    full_env.update(env or {})
    completed = subprocess.run(
        [levered_executable(), *args], input=input or "", capture_output=True, text=True,
        env=full_env, timeout=timeout, check=False,
    )
    return CliRun(tuple(args), completed.returncode, completed.stdout, completed.stderr)
