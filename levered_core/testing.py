"""Helpers for testing levered plugins: run the real ``levered``, stub the API over HTTP.

Part of the public plugin API (``docs/plugins.md``)::

    from levered_core.testing import run_cli

    def test_hello(tmp_path):
        run = run_cli("hello", "list", "--json", home=tmp_path)
        assert run.exit_code == 0
        assert run.json["greetings"]
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
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


#: A site config path that does not exist: what :func:`run_cli` uses unless told otherwise.
NO_SITE_CONFIG = os.path.join(os.sep, "nonexistent", "levered-testing", "site-config.json")


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
    :param env: extra environment variables (they override the inherited ones). The host's site
        config (``LEVERED_SITE_CONFIG``, ``/etc/levered/config.json``) is not used unless ``env``
        names one in ``LEVERED_SITE_CONFIG``.
    :param input: text for stdin; without it stdin is empty (not a terminal).
    :returns: exit code, stdout and stderr.
    """
    full_env = dict(os.environ)
    full_env.pop("LEVERED_API_KEY", None)
    full_env.pop("LEVERED_API_URL", None)
    full_env.pop("LEVERED_ENV", None)
    full_env["LEVERED_SITE_CONFIG"] = NO_SITE_CONFIG  # the host's policy and defaults stay out of tests
    if home is not None:
        full_env["LEVERED_HOME"] = str(home)
    full_env.update(env or {})
    completed = subprocess.run(
        [levered_executable(), *args], input=input or "", capture_output=True, text=True,
        env=full_env, timeout=timeout, check=False,
    )
    return CliRun(tuple(args), completed.returncode, completed.stdout, completed.stderr)


class StubAPI:
    """A real HTTP server on 127.0.0.1 answering scripted JSON responses (a context manager).

    Queue responses with :meth:`add`; each path's last response repeats; unknown paths get the
    API's 404 envelope. Every request is recorded in :attr:`requests` (method, path, query,
    headers, decoded body).
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = {}
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                stub.requests.append({"method": self.command, "path": path, "query": query,
                                      "headers": dict(self.headers), "body": json.loads(raw) if raw else None})
                queue = stub.routes.get((self.command, path)) or [(404, {"error": {
                    "code": "not_found", "message": f"no route {path}"}, "meta": {"request_id": "req_stub"}}, {})]
                status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Queue one response for ``method path``."""
        self.routes.setdefault((method, path), []).append((status, body, headers or {}))

    def __enter__(self) -> StubAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def envelope_error(code: str, message: str, request_id: str = "req_0123456789abcdef01234567") -> dict[str, Any]:
    """Return a docs/api.md 1.5 error envelope."""
    return {"error": {"code": code, "message": message}, "meta": {"request_id": request_id}}
