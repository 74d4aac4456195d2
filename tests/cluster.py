"""N real `levered-server` replicas on one PostgreSQL behind a real HAProxy, on loopback.

Used by the scale-out test (tests/scale) and the replica benchmark (bench/replicas). Every
replica has its own data dir and port and the same state database, managed warehouse and
secret key, as docs/server.md's production layout says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

from tests.live_server import TEST_ENV, free_port

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                       else None)
SECRET = "levered-cluster-test-secret-key-0123456789"


def haproxy_config(port: int, backends: list[int]) -> str:
    """Round robin per request, health checks every 200 ms, retries only before sending."""
    servers = "\n".join(f"  server r{i} 127.0.0.1:{p} check" for i, p in enumerate(backends))
    return f"""global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  # A replica slow to answer its health check under load is busy, not down; a killed one
  # refuses the connection and is taken out after two checks (~0.4 s).
  timeout check 2s
  retries 2
  option redispatch
frontend levered
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /healthz
  default-server inter 200ms fall 2 rise 2
{servers}
"""


@dataclasses.dataclass
class Replica:
    """One `levered-server` process."""

    index: int
    port: int
    data_dir: pathlib.Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> pathlib.Path:
        return self.data_dir / "server.log"


@dataclasses.dataclass
class Cluster:
    """Replicas, the balancer in front of them, and an API key of the default organization."""

    root: pathlib.Path
    database_url: str
    replicas: list[Replica]
    lb_port: int
    env: dict[str, str]
    haproxy: subprocess.Popen[bytes] | None = None
    api_key: str = ""

    @property
    def url(self) -> str:
        """The balancer's URL: what clients use."""
        return f"http://127.0.0.1:{self.lb_port}"

    def start_replica(self, r: Replica) -> None:
        """Start one replica and wait for its /healthz."""
        exe = pathlib.Path(sys.executable).with_name("levered-server")
        r.data_dir.mkdir(parents=True, exist_ok=True)
        with open(r.log, "ab") as log:
            r.process = subprocess.Popen(
                [str(exe), "--port", str(r.port), "--data-dir", str(r.data_dir / "data"),
                 "--database-url", self.database_url],
                stdout=log, stderr=subprocess.STDOUT,
                env={**self.env, "LEVERED_REPLICA_ID": f"r{r.index}"})
        wait_healthy(r.url, r.process, r.log)

    def kill(self, r: Replica) -> None:
        """`kill -9` a replica."""
        assert r.process is not None
        r.process.send_signal(signal.SIGKILL)
        r.process.wait(10)

    def start_balancer(self) -> None:
        """Start HAProxy in the foreground and wait until it answers."""
        assert HAPROXY is not None
        cfg = self.root / "haproxy.cfg"
        cfg.write_text(haproxy_config(self.lb_port, [r.port for r in self.replicas]))
        with open(self.root / "haproxy.log", "ab") as log:
            self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.haproxy, self.root / "haproxy.log")

    def api(self, method: str, path: str, body: Any = None, *, url: str | None = None,
            timeout: float = 60) -> tuple[int, Any, dict[str, str]]:
        """Call the API (through the balancer unless `url`): status, body, headers."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request((url or self.url) + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.api_key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)

    def stop(self) -> None:
        """SIGTERM everything still running."""
        procs = [r.process for r in self.replicas] + [self.haproxy]
        for p in procs:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in procs:
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(30)
                if p.poll() is None:
                    p.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: pathlib.Path,
                 timeout: float = 60) -> None:
    """Wait for `url`/healthz to answer 200, or fail with the process's log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text() if log.exists() else "no log") from None
            time.sleep(0.1)


def pg_exec(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement in autocommit on a psycopg URL; return its rows (if any)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def fresh_schema(pg_url: str, prefix: str = "lvcluster_") -> Iterator[str]:
    """A new state schema on `pg_url`; yields the URL that uses it. Dropped after, with the
    managed-warehouse databases (`lvdw_…`) and roles of the organizations it holds."""
    schema = prefix + uuid.uuid4().hex[:10]
    pg_exec(pg_url, f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        orgs = [o for (o,) in pg_exec(pg_url, f"SELECT id FROM {schema}.organizations")]
        for org in orgs:
            name = "lvdw_" + org.replace("-", "")
            with contextlib.suppress(Exception):
                pg_exec(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            with contextlib.suppress(Exception):
                pg_exec(pg_url, f"DROP ROLE IF EXISTS {name}_r")
        pg_exec(pg_url, f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def cluster(root: pathlib.Path, pg_url: str, n: int, **env: str) -> Iterator[Cluster]:
    """Start `n` replicas on a fresh state schema of `pg_url` behind HAProxy; clean up after.

    The organizations' managed-warehouse databases (`lvdw_…`) and roles are dropped with the
    schema.
    """
    with fresh_schema(pg_url) as url:
        yield from _cluster(root, url, n, env)


def _cluster(root: pathlib.Path, url: str, n: int, env: dict[str, str]) -> Iterator[Cluster]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LEVERED_HOME": str(root / "home"),
            **TEST_ENV, "LEVERED_SECRET_KEY": SECRET, "LEVERED_ACCESS_LOG": "false",
            "LEVERED_PASSWORD_HASH_COST": "10", **env}
    c = Cluster(root=root, database_url=url,
                replicas=[Replica(i, free_port(), root / f"r{i}") for i in range(n)],
                lb_port=free_port(), env=base)
    try:
        c.start_replica(c.replicas[0])  # migrates and creates the default organization
        for r in c.replicas[1:]:
            c.start_replica(r)
        from levered_server.bootstrap import create_api_key

        c.api_key = create_api_key(data_dir=root / "admin", database_url=url,
                                   settings=_settings(root, url))["secret"]
        if HAPROXY is not None:
            c.start_balancer()
        yield c
    finally:
        c.stop()


def _settings(root: pathlib.Path, url: str) -> Any:
    from levered_server.settings import Settings

    return Settings(data_dir=root / "admin", database_url=url, secret_key=SECRET)
