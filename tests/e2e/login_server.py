"""A real server whose public URL is its address (the OAuth issuer), with login users."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from levered_core.testing import levered_executable
from tests.e2e.conftest import free_port

PASSWORD = "correct horse battery"


@dataclasses.dataclass
class LoginServer:
    url: str
    data_dir: pathlib.Path
    process: subprocess.Popen[bytes]


def start_server(data_dir: pathlib.Path) -> Iterator[LoginServer]:
    """`levered-server` on a free port with users ada (Acme + Default) and bob (Acme)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PATH": "/usr/bin:/bin", "LEVERED_HOME": str(data_dir / "home"),
           "LEVERED_PUBLIC_URL": url, "LEVERED_RATE_LIMIT_PER_MINUTE": "0",
           "LEVERED_ACCESS_LOG": "false"}
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - the child writes to it
    process = subprocess.Popen([str(pathlib.Path(sys.executable).with_name("levered-server")),
                                "--port", str(port), "--data-dir", str(data_dir / "data")],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "server.log").read_text()) from None
            time.sleep(0.1)
    from levered_server.bootstrap import create_user
    from levered_server.settings import Settings

    settings = Settings(data_dir=data_dir / "data")
    create_user(settings=settings, email="ada@acme.test", password=PASSWORD, org_name="Acme",
                name="Ada Lovelace", create_org=True)
    create_user(settings=settings, email="ada@acme.test", password="", org_name="Default")
    create_user(settings=settings, email="bob@acme.test", password=PASSWORD, org_name="Acme")
    try:
        yield LoginServer(url, data_dir, process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def cli_env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """The environment of a `levered` child: no API key, its own home."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LEVERED_API_KEY", "LEVERED_API_URL", "LEVERED_ENV")}
    return {**env, "LEVERED_HOME": str(home), "LEVERED_SITE_CONFIG": str(home / "no-site.json"),
            **extra}


class Login:
    """`levered login …` running in the background; its stderr is collected line by line."""

    def __init__(self, home: pathlib.Path, *args: str, before: tuple[str, ...] = ()) -> None:
        """``levered <before> login <args>``: ``before`` holds global options written before the command."""
        self.process = subprocess.Popen([levered_executable(), *before, "login", *args], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, env=cli_env(home))
        self.lines: list[str] = []
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, "".join(self.lines))
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in stderr: {''.join(self.lines)}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, rest = self.process.communicate(timeout=timeout)  # may take stderr's tail too
        self._reader.join(timeout=5)
        return self.process.returncode, out, "".join(self.lines) + (rest or "")


AUTHORIZE_URL = r"\n\s+(http://\S+/oauth/authorize\?\S+)\n"


def approve_without_a_browser(authorize_url: str, email: str, org: str = "Acme",
                              decision: str = "approve") -> str:
    """Play the browser with `requests`: sign in, pick `org`, decide; return the callback page."""
    import requests

    web = requests.Session()
    page = web.get(authorize_url, timeout=30)

    def post(**fields: str) -> Any:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        return web.post(authorize_url, data={"csrf_token": csrf.group(1), **fields}, timeout=30,
                        allow_redirects=False)

    page = post(step="login", email=email, password=PASSWORD)
    orgs = dict((n, i) for i, n in re.findall(r'value="([^"]+)"[^>]*> ([^<]+)</label>', page.text))
    if orgs:
        page = post(step="org", organization_id=orgs[org])
    org_id = re.search(r'name="organization_id" value="([^"]+)"', page.text)
    assert org_id, page.text
    answer = post(step="consent", organization_id=org_id.group(1), decision=decision)
    assert answer.status_code == 302, answer.text
    return str(web.get(answer.headers["location"], timeout=30).text)
