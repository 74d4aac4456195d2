"""Server settings: defaults, environment variables (API.md section 15), overrides."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANAGED_ENGINES = ("duckdb", "postgres")


def default_data_dir() -> Path:
    """Return `$LEVERED_HOME/server`, or `~/.levered/server`."""
    home = os.environ.get("LEVERED_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".levered"
    return base / "server"


def _bool(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _memory(value: str) -> str:
    # DuckDB's spelling of an amount of memory: 512MB, 1.5GB, 2GiB …
    text = value.strip().replace(" ", "")
    if not re.fullmatch(r"\d+(\.\d+)?(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", text.upper()):
        raise ValueError(f"not an amount of memory such as 512MB or 2GB: {value!r}")
    return text


def _number(low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """A parser of a number in [low, high] (in (low, high] with `above`)."""
    def parse(raw: str) -> float:
        value = float(raw)
        if not (low < value if above else low <= value) or value > high:
            bound = "more than" if above else "at least"
            raise ValueError(f"must be {bound} {low:g} and at most {high:g}, got {raw!r}")
        return value

    return parse


_scale = _number(0, 4, above=True)
_stall_ms = _number(0, 10_000)  # 0: off
_seconds = _number(0, 60)
_timeout = _number(0, 3600, above=True)


def _engine(value: str) -> str:
    engine = value.strip().lower()
    if engine not in MANAGED_ENGINES:
        raise ValueError(f"one of {', '.join(MANAGED_ENGINES)}, got {value!r}")
    return engine


def is_postgres_url(url: str) -> bool:
    """Whether a SQLAlchemy URL names PostgreSQL (`postgresql://`, `postgresql+psycopg://`…)."""
    return url.split(":", 1)[0].split("+", 1)[0].lower() in ("postgresql", "postgres")


def _replica_id(value: str) -> str:
    # It goes into a response header: visible ASCII only.
    text = value.strip()
    if not re.fullmatch(r"[!-~]{1,200}", text):
        raise ValueError(f"1-200 visible ASCII characters without spaces, got {value!r}")
    return text


def _threads(value: str) -> int:
    n = int(value)
    if n < 1:
        raise ValueError(f"must be at least 1: {value!r}")
    return n


def default_warehouse_threads() -> int:
    """DuckDB threads per query: the CPUs, at most 4 (a server shares them with serving)."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the server reads at start; immutable once the app is built."""

    host: str = "127.0.0.1"
    port: int = 3100
    # uvicorn worker processes on the port (workers.py); more than one needs PostgreSQL.
    workers: int = 1
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    database_url: str | None = None
    public_url: str = "http://localhost:3100"
    rate_limit_per_minute: int = 100
    serve_rate_limit_per_minute: int = 300
    trusted_proxies: tuple[str, ...] = ()
    train_interval_minutes: float = 15.0
    train_every_serves: int = 1000
    min_train_observations: int = 100
    exploration_share: float = 0.0
    # Serving's Thompson draws use the posterior spread × this (1 = plain Thompson sampling;
    # 0.6 chosen with bench/regret, see engine/policy.py).
    thompson_scale: float = 0.6
    serve_draws: int = 256
    query_timeout_seconds: float = 30.0
    # Embedded DuckDB, per organization's database: working-memory cap (beyond it joins and
    # aggregations spill to `<data dir>/warehouse/tmp/<org>`), and threads per query.
    warehouse_memory_limit: str = "512MB"
    warehouse_threads: int = dataclasses.field(default_factory=default_warehouse_threads)
    cors_origins: tuple[str, ...] = ()
    embedded_warehouse: bool = True
    # The managed warehouse's engine (None: postgres when the state database is PostgreSQL,
    # else duckdb) and the PostgreSQL server holding it (None: the state database's server).
    managed_warehouse: str | None = None
    warehouse_url: str | None = None
    # API.md 1.3: managing API keys needs a login session (an access token); an
    # API key gets 403. True restores the pre-OAuth behaviour (keys manage keys).
    api_keys_manage_keys: bool = False
    admin_email: str = "admin@localhost"
    org_name: str = "Default"
    # 0: a serve is acknowledged once its lock and exposure are committed (services/serve_log).
    # > 0: acknowledged at once and committed every that many seconds (a crash loses them).
    serve_write_behind_seconds: float = 0.0
    # > 0: log event-loop stalls and serve commits longer than this many ms (stalls.py).
    stall_trace_ms: float = 0.0
    # Slow and careless clients (protocol.py, limits.py; docs/server.md "Limits"): connections
    # held (at most the file limit less a reserve), requests in flight, how long the headers
    # and a whole request may take to arrive, idle keep-alive, the graceful shutdown's wait,
    # and the request-body bytes in flight across the server.
    max_connections: int = 4096
    max_requests_in_flight: int = 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 75.0
    shutdown_timeout_seconds: float = 30.0
    body_budget_mb: int = 16
    body_budget_wait_seconds: float = 10.0
    secret_key: str | None = None
    # The secret key from a file (a mounted secret), and older keys that still open stored
    # credentials during a rotation (secretbox.py, keycheck.py).
    secret_key_file: Path | None = None
    secret_key_previous: tuple[str, ...] = ()
    # Names this process in `X-Levered-Replica`, /healthz, /readyz and the log (replica.py);
    # None: `<hostname>:<port>`.
    replica_id: str | None = None
    log_level: str = "info"
    access_log: bool = True
    # Users' own warehouse queries (query, table and metric previews) stop after this many
    # seconds: below the CLI's default HTTP timeout (30 s), so the user reads why.
    warehouse_query_timeout_seconds: float = 20.0

    @property
    def sqlalchemy_url(self) -> str:
        """The state-store URL: the given one, else SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'levered.sqlite3'}"

    @property
    def warehouse_dir(self) -> Path:
        """Directory holding one embedded DuckDB database per organization."""
        return self.data_dir / "warehouse"

    @property
    def managed_engine(self) -> str:
        """`duckdb` or `postgres`: `managed_warehouse`, else postgres with a PostgreSQL state."""
        if self.managed_warehouse:
            return self.managed_warehouse
        return "postgres" if is_postgres_url(self.sqlalchemy_url) else "duckdb"

    @property
    def managed_warehouse_url(self) -> str:
        """The PostgreSQL server of the managed warehouses: `warehouse_url`, else the state's.

        :raises ValueError: neither is a PostgreSQL URL.
        """
        url = self.warehouse_url or self.sqlalchemy_url
        if not is_postgres_url(url):
            raise ValueError("LEVERED_MANAGED_WAREHOUSE=postgres needs LEVERED_WAREHOUSE_URL "
                             "or a PostgreSQL LEVERED_DATABASE_URL")
        return url

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_ENV: dict[str, tuple[str, Any]] = {
    "LEVERED_HOST": ("host", str),
    "LEVERED_PORT": ("port", int),
    "LEVERED_WORKERS": ("workers", _threads),
    "LEVERED_DATA_DIR": ("data_dir", lambda v: Path(v).expanduser()),
    "LEVERED_DATABASE_URL": ("database_url", str),
    "LEVERED_PUBLIC_URL": ("public_url", str),
    "LEVERED_RATE_LIMIT_PER_MINUTE": ("rate_limit_per_minute", int),
    "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": ("serve_rate_limit_per_minute", int),
    "LEVERED_TRUSTED_PROXIES": ("trusted_proxies", _list),
    "LEVERED_TRAIN_INTERVAL_MINUTES": ("train_interval_minutes", float),
    "LEVERED_TRAIN_EVERY_SERVES": ("train_every_serves", int),
    "LEVERED_MIN_TRAIN_OBSERVATIONS": ("min_train_observations", int),
    "LEVERED_EXPLORATION_SHARE": ("exploration_share", float),
    "LEVERED_THOMPSON_SCALE": ("thompson_scale", _scale),
    "LEVERED_SERVE_DRAWS": ("serve_draws", int),
    "LEVERED_QUERY_TIMEOUT_SECONDS": ("query_timeout_seconds", float),
    "LEVERED_WAREHOUSE_MEMORY_LIMIT": ("warehouse_memory_limit", _memory),
    "LEVERED_WAREHOUSE_THREADS": ("warehouse_threads", _threads),
    "LEVERED_CORS_ORIGINS": ("cors_origins", _list),
    "LEVERED_EMBEDDED_WAREHOUSE": ("embedded_warehouse", _bool),
    "LEVERED_MANAGED_WAREHOUSE": ("managed_warehouse", _engine),
    "LEVERED_WAREHOUSE_URL": ("warehouse_url", str),
    "LEVERED_API_KEYS_MANAGE_KEYS": ("api_keys_manage_keys", _bool),
    "LEVERED_ADMIN_EMAIL": ("admin_email", str),
    "LEVERED_ORG_NAME": ("org_name", str),
    "LEVERED_SECRET_KEY": ("secret_key", str),
    "LEVERED_SECRET_KEY_FILE": ("secret_key_file", lambda v: Path(v).expanduser()),
    "LEVERED_SECRET_KEY_PREVIOUS": ("secret_key_previous", _list),
    "LEVERED_REPLICA_ID": ("replica_id", _replica_id),
    "LEVERED_SERVE_WRITE_BEHIND_SECONDS": ("serve_write_behind_seconds", _seconds),
    "LEVERED_STALL_TRACE_MS": ("stall_trace_ms", _stall_ms),
    "LEVERED_MAX_CONNECTIONS": ("max_connections", _threads),
    "LEVERED_MAX_REQUESTS_IN_FLIGHT": ("max_requests_in_flight", _threads),
    "LEVERED_HEADER_TIMEOUT_SECONDS": ("header_timeout_seconds", _timeout),
    "LEVERED_BODY_TIMEOUT_SECONDS": ("body_timeout_seconds", _timeout),
    "LEVERED_KEEP_ALIVE_SECONDS": ("keep_alive_seconds", _timeout),
    "LEVERED_SHUTDOWN_TIMEOUT_SECONDS": ("shutdown_timeout_seconds", _timeout),
    "LEVERED_BODY_BUDGET_MB": ("body_budget_mb", _threads),
    "LEVERED_BODY_BUDGET_WAIT_SECONDS": ("body_budget_wait_seconds", _timeout),
    "LEVERED_LOG_LEVEL": ("log_level", str),
    "LEVERED_ACCESS_LOG": ("access_log", _bool),
    "LEVERED_WAREHOUSE_QUERY_TIMEOUT_SECONDS": ("warehouse_query_timeout_seconds", _timeout),
}


def settings_from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from environment variables, then apply explicit overrides.

    :raises ValueError: when a variable does not parse.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, (field, parse) in _ENV.items():
        raw = env.get(var)
        if raw is not None and raw != "":
            try:
                values[field] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{var}: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "public_url" not in values and values.get("port", 3100) != 3100:
        # The OAuth issuer must be reachable: follow the port unless told otherwise.
        values["public_url"] = f"http://localhost:{values['port']}"
    return Settings(**values)
