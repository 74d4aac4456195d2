"""The real ``levered`` against a fault-injecting TCP proxy in front of a real server (issue 15).

A request that was sent but not answered (a reset, a server that does not answer in time) is not
a server that cannot be reached: for a request that changes something, the CLI says it may have
been applied and how to check, and the server shows that it was. ``GET`` keeps its retries; 429
and 503 give one line saying when to retry. Never a traceback without ``--debug``.

Loopback only and fast: the CLI's timeout is 1 s (config ``timeout``) where the proxy hangs.
"""

from __future__ import annotations

import json
import pathlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from levered_core.testing import CliRun, run_cli
from tests.live_server import LiveServer, free_port

SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup'"
METRICS = "/api/v2/warehouse/metrics"
CHECK = "it may have been applied on the server: check with `levered metrics list` before retrying"


def read_message(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """Read one HTTP/1.1 message (its head and ``Content-Length`` body); return it and what follows."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of a server that does to each request what ``plan`` says.

    ``plan[method]`` lists the actions for that method's requests in turn (the last repeats;
    none: ``pass``): ``pass`` forwards; ``reset`` forwards, waits for the server's answer (so the
    request was applied) and resets the client's connection instead; ``hang`` forwards and never
    answers the client; ``429:N`` and ``503:N`` answer with that status and ``Retry-After: N``
    without forwarding. :attr:`seen` records ``(method, path, action)``; :attr:`answered` is set
    once the server answered a request the client never got the answer of.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan: dict[str, list[str]] = {}
        self.seen: list[tuple[str, str, str]] = []
        self.answered = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _action(self, method: str, path: str) -> str:
        with self._lock:
            queue = self.plan.get(method) or ["pass"]
            action = queue.pop(0) if len(queue) > 1 else queue[0]
            self.seen.append((method, path, action))
            return action

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    request, buffer = read_message(conn, buffer)
                except OSError:
                    return
                method, path = request.split(b" ", 2)[:2]
                action = self._action(method.decode(), path.decode().partition("?")[0])
                if action[:4] in ("429:", "503:"):
                    conn.sendall(self._refusal(int(action[:3]), action[4:]))
                    continue
                answer = self._forward(request)
                if action == "reset":
                    self.answered.set()
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closing with a zero linger sends a TCP RST
                if action == "hang":
                    self.answered.set()
                    conn.settimeout(60)
                    try:
                        while conn.recv(65536):  # until the CLI gives up and closes
                            pass
                    except OSError:
                        pass
                    return
                conn.sendall(answer)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60) as upstream:
            upstream.sendall(request)
            return read_message(upstream, b"")[0]

    @staticmethod
    def _refusal(status: int, retry_after: str) -> bytes:
        # 429 as the server's rate limiter words it; 503 as a load balancer in front would (no envelope).
        if status == 429:
            body = json.dumps({"error": {"code": "rate_limited", "message": "Too many requests."},
                               "meta": {"request_id": "req_proxy"}}).encode()
            head = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json"
        else:
            body = b"<html><body>503 Service Unavailable</body></html>"
            head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html"
        return (f"{head}\r\nRetry-After: {retry_after}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    running = LiveServer.launch(tmp_path_factory.mktemp("faults-cli"))
    yield running
    running.stop()


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[FaultProxy]:
    running = FaultProxy(server.port)
    yield running
    running.close()


@pytest.fixture
def levered(server: LiveServer, proxy: FaultProxy, tmp_path: pathlib.Path) -> Callable[..., CliRun]:
    """Run the installed ``levered`` through the proxy; ``timeout`` is the CLI's (config) timeout."""

    def run(*args: str, timeout: int = 30, api_url: str | None = None) -> CliRun:
        home = tmp_path / f"home-{timeout}"
        home.mkdir(exist_ok=True)
        (home / "config.json").write_text(json.dumps({"timeout": timeout}))
        return run_cli(*args, home=home, env={"LEVERED_API_URL": api_url or proxy.url, "LEVERED_API_KEY": server.api_key,
                                              "LEVERED_SITE_CONFIG": str(tmp_path / "no-site.json")})

    return run


def create_metric(levered: Callable[..., CliRun], name: str, *extra: str, **options: object) -> CliRun:
    return levered(*extra, "metrics", "create", "--name", name, "--sql", SQL, "--anonymous-id-col", "anonymous_id",
                   "--timestamp-col", "timestamp_utc", **options)


def metric_names(server: LiveServer) -> list[str]:
    status, body = server.api("GET", METRICS)
    assert status == 200, body
    return [metric["name"] for metric in body["metrics"]]


def one_line_error(run: CliRun, code: int = 1) -> str:
    """The single ``Error:`` line of a failed run (no traceback, nothing else on stderr)."""
    assert run.exit_code == code, f"exit {run.exit_code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.stderr.startswith("Error: ") and len(run.stderr.splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return run.stderr.strip()


def test_a_post_reset_after_it_was_sent_may_have_been_applied_and_was(levered, proxy, server):
    proxy.plan["POST"] = ["reset"]
    line = one_line_error(create_metric(levered, "Reset mid-answer"))
    assert line == (f"Error: the connection to {proxy.url} was lost after POST {METRICS} was sent "
                    f"(connection reset by the server or a proxy); {CHECK}")
    assert "cannot reach" not in line
    assert [(m, a) for m, _, a in proxy.seen] == [("POST", "reset")]  # a POST is never sent twice
    assert "Reset mid-answer" in metric_names(server)  # what the message warns of: it was applied


def test_a_post_the_server_does_not_answer_in_time_may_have_been_applied_and_was(levered, proxy, server):
    proxy.plan["POST"] = ["hang"]
    line = one_line_error(create_metric(levered, "Slow answer", timeout=1))
    assert line == (f"Error: the request to POST {METRICS} timed out after 1 s; {CHECK} "
                    "(raise the limit with `levered config set timeout SECONDS`)")
    assert proxy.answered.wait(30)
    assert "Slow answer" in metric_names(server)


@pytest.fixture(scope="module")
def optimization_id(server: LiveServer) -> str:
    status, metric = server.api("POST", METRICS, {"name": "For an optimization", "sql": SQL, "column_mapping": {
        "anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, metric
    status, created = server.api("POST", "/api/v2/optimizations", {
        "name": "Hero", "reward_metric_id": metric["id"],
        "training_data_config": {"design_factors": [{"name": "headline", "levels": ["A", "B"]}]}})
    assert status == 201, created
    return str(created["id"])


def test_the_check_names_the_object_a_command_changed(levered, proxy, optimization_id):
    short = optimization_id[:8]
    proxy.plan["PATCH"] = ["reset"]
    line = one_line_error(levered("optimizations", "update", short, "--name", "Hero 2"))
    assert line.endswith("it may have been applied on the server: check with "
                         f"`levered optimizations show {short}` before retrying")


def test_a_command_that_names_no_check_still_warns_and_a_dry_run_is_retried(levered, proxy, optimization_id):
    proxy.plan["POST"] = ["reset"]
    line = one_line_error(levered("serve", optimization_id, "--anonymous-id", "u-1"))
    assert line.endswith(f"was lost after POST /api/v2/optimizations/{optimization_id}/serve was sent (connection "
                         "reset by the server or a proxy); it may have been applied on the server: check whether it "
                         "was before retrying")
    proxy.seen.clear()
    proxy.plan["POST"] = ["reset", "pass"]
    run = levered("serve", optimization_id, "--anonymous-id", "u-1", "--dry-run", "--json")  # records nothing
    assert run.exit_code == 0, run.stderr
    assert [a for _, _, a in proxy.seen] == ["reset", "pass"]


def test_debug_shows_the_traceback(levered, proxy):
    proxy.plan["POST"] = ["reset"]
    run = create_metric(levered, "Reset with debug", "--debug")
    assert run.exit_code == 1
    assert "Traceback (most recent call last)" in run.stderr and CHECK in run.stderr


def test_a_get_that_is_not_answered_in_time_is_not_retried(levered, proxy):
    proxy.plan["GET"] = ["hang"]
    line = one_line_error(levered("metrics", "list", timeout=1))
    assert line == (f"Error: the request to GET {METRICS} timed out after 1 s "
                    "(raise the limit with `levered config set timeout SECONDS`)")
    assert len(proxy.seen) == 1  # as before: a read timeout is not retried


def test_a_get_whose_connection_is_reset_is_retried(levered, proxy):
    proxy.plan["GET"] = ["reset", "pass"]
    run = levered("metrics", "list", "--json")
    assert run.exit_code == 0, run.stderr
    assert "metrics" in run.json and [a for _, _, a in proxy.seen] == ["reset", "pass"]


def test_a_get_answered_429_waits_retry_after_then_succeeds(levered, proxy):
    proxy.plan["GET"] = ["429:1", "pass"]
    run = levered("metrics", "list", "--json")
    assert run.exit_code == 0, run.stderr
    assert [a for _, _, a in proxy.seen] == ["429:1", "pass"]


@pytest.mark.parametrize("refusal,says", [
    ("429:0", "Too many requests. (rate_limited, req_proxy); still rate limited after 4 attempts"),
    ("503:0", "the server is busy: it answered 503 Service Unavailable (http_503); still busy after 4 attempts"),
])
def test_a_get_still_refused_after_its_retries_gives_up_in_one_line(levered, proxy, refusal, says):
    proxy.plan["GET"] = [refusal]
    assert one_line_error(levered("metrics", "list")) == f"Error: {says}"
    assert len(proxy.seen) == 4  # the first try and 3 retries, no more


@pytest.mark.parametrize("refusal,says", [
    ("429:7", "Too many requests. (rate_limited, req_proxy); retry in 7 s"),
    ("503:5", "the server is busy: it answered 503 Service Unavailable (http_503); retry in 5 s"),
])
def test_a_post_answered_429_or_503_is_not_retried_and_says_when_to_retry(levered, proxy, server, refusal, says):
    proxy.plan["POST"] = [refusal]
    name = f"Refused {refusal}"
    assert one_line_error(create_metric(levered, name)) == f"Error: {says}"
    assert len(proxy.seen) == 1
    assert name not in metric_names(server)  # the proxy answered: nothing reached the server


def test_a_refused_connection_is_cannot_reach_and_nothing_was_sent(levered, server):
    nobody = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(create_metric(levered, "Never sent", api_url=nobody))
    assert line == f"Error: cannot reach {nobody}: connection refused or host unknown; is the server running?"
    assert "may have been applied" not in line
    assert "Never sent" not in metric_names(server)


def test_the_command_reference_documents_timeouts_and_these_messages():
    import importlib.util

    root = pathlib.Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_cli_docs", root / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.FAILURES in (root / "docs" / "cli.md").read_text(), \
        "docs/cli.md is stale: run `.venv/bin/python scripts/gen_cli_docs.py`"
    for said in ("check with `levered metrics list` before retrying", "levered config set timeout SECONDS",
                 "cannot reach <url>: <reason>", "retry in <Retry-After> s"):
        assert said in generator.FAILURES
