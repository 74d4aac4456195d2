"""Which replica this process is: the name behind `X-Levered-Replica`, /healthz and /readyz.

Behind a load balancer any replica may answer any request; the header and the health
documents say which one did, so an operator can tie a response to a process and its log.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any

from levered_server import __version__
from levered_server.clock import iso_s, utcnow
from levered_server.settings import Settings

HEADER = b"x-levered-replica"


def replica_id(settings: Settings) -> str:
    """`LEVERED_REPLICA_ID`, else `<hostname>:<port>`."""
    return settings.replica_id or f"{socket.gethostname()}:{settings.port}"


def state_backend(url: str) -> str:
    """`sqlite` or `postgresql` (the URL's dialect, never its password)."""
    name = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "postgresql" if name == "postgres" else name


def redacted(url: str) -> str:
    """A database URL fit for a log: the password replaced by `***`."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show the dialect only
        return state_backend(url) + "://…"


@dataclasses.dataclass(frozen=True)
class Replica:
    """This process as the health endpoints describe it."""

    id: str
    pid: int
    started_at: str
    version: str

    @classmethod
    def of(cls, settings: Settings) -> Replica:
        """This process, now."""
        return cls(replica_id(settings), os.getpid(), iso_s(utcnow()) or "", __version__)

    def as_dict(self) -> dict[str, Any]:
        """`{"id", "pid", "started_at", "version"}`."""
        return dataclasses.asdict(self)


def startup_line(settings: Settings, replica: Replica) -> str:
    """The one log line that says what this replica is and what it runs on."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    engine = (getattr(settings, "managed_engine", None) or getattr(settings, "managed_warehouse", None)
              or "duckdb")
    return (f"levered-server {replica.version} replica {replica.id} pid {replica.pid} listening on "
            f"http://{host}:{settings.port}; state {redacted(settings.sqlalchemy_url)}; managed "
            f"warehouse {engine}; data dir {settings.data_dir}")
