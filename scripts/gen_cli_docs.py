#!/usr/bin/env python3
"""Write docs/cli.md: every command with a real example and its real output.

It starts a real server in a temporary directory (`levered server start`), runs a scripted
walk-through with the installed `levered`, and writes each command's usage line, the command
and what it printed; `optimizations results` and `models state` also show their `--json`. Run it
with the environment's interpreter: `.venv/bin/python scripts/gen_cli_docs.py [--output PATH]
[--port N]`. tests/test_docs.py imports :func:`synopsis` and checks that the file is current:
every installed command is in it with the usage line and summary it has now, and the text
examples are what :mod:`levered_core.views` prints for the JSON beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import tempfile
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "cli.md"
LEVERED = str(pathlib.Path(sys.executable).with_name("levered"))
FACTORS = ('[{"name": "headline", "levels": ["Ship faster", "Build better", "Scale up"]}, '
           '{"name": "cta_text", "levels": ["Get started", "Try it free"]}]')
SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' AND timestamp_utc >= @start_date"
GUARD_SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'purchase' AND timestamp_utc >= @start_date"
#: The last section, the same for every command: written as is (no command runs for it).
FAILURES = """## Timeouts, lost connections and retries

Each request has a connect timeout of 5 s and a read timeout of `timeout` seconds: the config key
(default 30, 1–600; `levered config set timeout 120`, or `"timeout"` in the site config), not a
flag or an environment variable. The read timeout is how long the CLI waits for the server to
start answering, or for the next part of its answer. A command that needs longer (a heavy
`warehouse query`) needs a larger `timeout`, and the server's own query timeout
(`LEVERED_QUERY_TIMEOUT_SECONDS`, docs/server.md) must allow it too: keep the CLI's above the
server's, so that a slow query ends with the server's message rather than the CLI's.

What the CLI says depends on whether the request left this machine and whether it changes
something. `GET` requests (and `warehouse query`, a read-only `POST`) may be sent again;
`POST`, `PATCH`, `PUT` and `DELETE` never are, because the server may already have applied them.

| what happened | `GET`, `warehouse query` | `POST`, `PATCH`, `PUT`, `DELETE` |
| --- | --- | --- |
| no connection (refused, unknown host, none within 5 s, TLS failure): nothing was sent | retried 3 times (after 0.5, 1, 2 s), then `cannot reach <url>: <reason>` | `cannot reach <url>: <reason>`; safe to run again |
| sent, then the connection was reset or closed before the answer | retried 3 times, then `the connection to <url> was lost after GET <path> was sent (<why>), 4 attempts: try again` | ``the connection to <url> was lost after POST <path> was sent (<why>); it may have been applied on the server: check with `<command>` before retrying`` |
| sent, no answer within `timeout` | not retried: ``the request to GET <path> timed out after 30 s (raise the limit with `levered config set timeout SECONDS`)`` | ``the request to POST /api/v2/warehouse/metrics timed out after 30 s; it may have been applied on the server: check with `levered metrics list` before retrying (raise the limit with …)`` |
| `429` rate limited, `503` busy | retried 3 times, waiting `Retry-After` (at most 60 s each), then `<message> (<code>, <request_id>); still rate limited after 4 attempts` | not retried: `<message> (<code>, <request_id>); retry in <Retry-After> s` |

Each is one `Error:` line and exit code 1 (error from the API or the network; the codes are in
the README and `levered help exit-codes`); `--debug` adds the traceback and logs every request.
The command to check with is the one that shows what the failed command changes: `metrics list`
for `metrics create|delete`, `optimizations list` for `optimizations create`, `optimizations show
<id>` for `optimizations update|archive`, `models list` for `models create|train|delete`, `auth
api-keys list` for `auth api-keys create|revoke`; a command that names none (`serve`) says to check
whether it was applied. A plugin's command names its own (`check_command`, docs/plugins.md).
"""


@functools.cache
def _app() -> Any:
    from levered_core import manifest
    from levered_core.app import LeveredApp

    return LeveredApp(manifest.load())


def synopsis(command: str) -> tuple[str, str]:
    """The usage line (whitespace collapsed, so terminal width does not matter) and summary of a command."""
    factory, _, _ = _app().command_manager.find_command(command.split())
    parser = factory(_app(), None, cmd_name=command).get_parser(f"levered {command}")
    return " ".join(parser.format_usage().split()), (parser.description or "").split("\n\n")[0].strip()


class Session:
    """Runs commands and collects the markdown."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.parts: list[str] = []
        self.documented: set[str] = set()

    def run(self, *args: str, stdin: str | None = None, show: bool = True) -> str:
        done = subprocess.run([LEVERED, *args], env=self.env, capture_output=True, text=True, input=stdin or "",
                              check=False)
        if show:
            printed = done.stdout + done.stderr
            self.parts.append(f"```console\n$ levered {shlex.join(args)}\n{printed.rstrip()}\n```\n")
        return done.stdout

    def section(self, command: str, note: str = "") -> None:
        usage, summary = synopsis(command)
        self.documented.add(command)
        self.parts.append(f"### `levered {command}`\n\n{summary}\n\n```\n{usage}\n```\n\n{note}".rstrip() + "\n")

    def heading(self, text: str) -> None:
        self.parts.append(f"## {text}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(url: str, key: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def walkthrough(s: Session, data_dir: str, port: int) -> None:
    s.heading("Configuration")
    s.section("config set")
    s.run("config", "set", "environment", "local")
    s.section("config get")
    s.run("config", "get", "environment")
    s.section("config list")
    s.run("config", "list")
    s.section("env use", "The same setting as `config set environment`: it selects the default API URL (and the auth "
                         "file) of prod, testing or local.")
    s.run("env", "use", "local")
    s.section("env")
    s.run("env")
    s.heading("The local server (levered-server)")
    s.section("server start", "Starts in the background; `--demo` also seeds data and runs a traffic simulator.")
    s.run("server", "start", "--port", str(port), "--data-dir", data_dir)
    s.section("server user create", "Creates a login user (or adds an existing one to `--org`); the password is asked "
                                    "for, or read from stdin with `--password-stdin`.")
    s.run("server", "user", "create", "ada@acme.test", "--org", "Acme", "--create-org", "--password-stdin",
          "--data-dir", data_dir, stdin="correct horse battery\n")
    s.section("server api-key create", "Prints only the secret on stdout, so `export LEVERED_API_KEY=$(...)` works.")
    key = s.run("server", "api-key", "create", "--data-dir", data_dir, "--name", "docs").strip()
    url = f"http://127.0.0.1:{port}"
    s.env.update({"LEVERED_API_URL": url, "LEVERED_API_KEY": key})
    s.section("server status")
    s.run("server", "status", "--data-dir", data_dir)
    s.heading("Authentication")
    s.section("whoami")
    s.run("whoami")
    s.section("login", "Opens the browser (loopback redirect with PKCE); `--device` prints a code for another "
                       "device; `--no-browser` only prints the URL. `--api-url URL` (before or after `login`) also "
                       "makes URL the server of later commands (`api_url` in the config) until the next "
                       "`login --api-url` or `config set api_url`. Interactive, so not run here.")
    s.section("logout")
    s.run("logout")
    s.section("auth status", "Reads only the auth files: every stored session (URL, environment, user, "
                             "organization, expiry), `*` on the one commands use; on stderr, the URL in force, "
                             "where it comes from and the credential. Here the API key wins:")
    s.run("auth", "status")
    s.section("auth api-keys create")
    s.run("auth", "api-keys", "create", "--name", "checkout-backend")
    s.section("auth api-keys list")
    s.run("auth", "api-keys", "list")
    keys = json.loads(s.run("auth", "api-keys", "list", "--json", show=False))["api_keys"]
    s.section("auth api-keys revoke")
    s.run("auth", "api-keys", "revoke", keys[0]["id"][:8], "-y")
    s.heading("Warehouse")
    s.section("warehouse connection")
    s.run("warehouse", "connection")
    s.section("warehouse status")
    s.run("warehouse", "status")
    api(url, key, "POST", "/api/v2/ingest/rewards", {"events": [
        {"anonymous_id": f"user-{i}", "name": "signup" if i % 2 else "purchase", "value": 1 + i % 3}
        for i in range(6)]})
    s.section("warehouse tables")
    s.run("warehouse", "tables")
    s.section("warehouse columns")
    s.run("warehouse", "columns", "rewards")
    s.section("warehouse preview")
    s.run("warehouse", "preview", "rewards", "-n", "3", "-c", "anonymous_id", "-c", "name", "-c", "value")
    s.section("warehouse query", "The SQL may also come from `--sql`, a file (`@query.sql`) or stdin (`-`).")
    s.run("warehouse", "query", "SELECT name, count(*) AS n FROM rewards GROUP BY name ORDER BY name")
    s.heading("Metrics")
    s.section("metrics create")
    metric = json.loads(s.run("metrics", "create", "--name", "Sign-ups", "--sql", SQL, "--anonymous-id-col",
                              "anonymous_id", "--timestamp-col", "timestamp_utc", "--json", show=False))
    s.parts.append(f"```console\n$ levered metrics create --name Sign-ups --sql \"{SQL}\" --anonymous-id-col "
                   f"anonymous_id --timestamp-col timestamp_utc\nCreated metric Sign-ups ({metric['id']}), bool reward\n```\n")
    s.section("metrics list")
    s.run("metrics", "list")
    s.section("metrics preview")
    s.run("metrics", "preview", metric["id"][:8], "--limit", "3")
    guard = json.loads(s.run("metrics", "create", "--name", "Purchases", "--sql", GUARD_SQL, "--anonymous-id-col",
                             "anonymous_id", "--timestamp-col", "timestamp_utc", "--json", show=False))
    optimizations(s, url, key, metric["id"], guard["id"])
    s.heading("Plugins")
    s.section("plugins list")
    s.run("plugins", "list", "-c", "group", "-c", "distribution", "-c", "status", "-c", "commands")
    s.section("plugins install", "Runs pip in the CLI's own environment and reports the groups and hooks it installed or upgraded, e.g. "
                                 "`levered plugins install ./examples/levered-hello` (not run here: it changes the "
                                 "environment).")
    s.section("plugins uninstall", "Only levered plugins; the core itself is refused:")
    s.run("plugins", "uninstall", "levered")
    s.section("server stop")
    s.run("server", "stop", "--data-dir", data_dir)


def optimizations(s: Session, url: str, key: str, metric_id: str, guard_id: str) -> None:
    s.heading("Optimizations")
    s.section("optimizations create", "JSON flags accept inline JSON or `@file.json`. `--guardrail METRIC_ID[:higher|lower"
                                      "[:TOLERANCE]]` (repeatable) names a metric the optimization must not harm, "
                                      "`--guardrail-metric-ids ID,ID` several with the defaults (higher is better, "
                                      "tolerance 0), and `--auto-stop` stops it when one is violated (server "
                                      "extensions: see `optimizations guardrails`).")
    s.run("optimizations", "create", "--name", "Landing Page Hero", "--design-factors", FACTORS,
          "--reward-metric-id", metric_id[:8], "--context-factors", '[{"name": "country"}, {"name": "device_type"}]',
          "--guardrail", f"{guard_id[:8]}:higher:0.02", "--auto-stop")
    opt = json.loads(s.run("optimizations", "list", "--json", show=False))["optimizations"][0]
    short = opt["id"][:8]
    s.section("optimizations list")
    s.run("optimizations", "list")
    s.section("optimizations show")
    s.run("optimizations", "show", short)
    s.heading("Serving")
    s.section("serve")
    s.run("serve", short, "--anonymous-id", "user-42", "--context", '{"country": "US", "device_type": "mobile"}')
    converted = []
    for i in range(150):
        served = api(url, key, "POST", f"/api/v2/optimizations/{opt['id']}/serve", {"anonymous_id": f"v{i}"})
        if (served["variant_number"] + i) % 4 == 0:
            converted.append(served["anonymous_id"])
    # Conversions come after the exposures they are credited to (last-touch attribution).
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    rewards = [{"anonymous_id": user, "name": "signup", "timestamp": now} for user in converted]
    ingested = api(url, key, "POST", "/api/v2/ingest/rewards", {"events": rewards})
    assert ingested["accepted"] == len(rewards) and not ingested["rejected"], ingested
    s.heading("Models")
    s.section("models list")
    s.run("models", "list")
    s.section("models train", "Synchronous; `--bias '{\"headline\": 0.5}'` widens exploration of a factor.")
    s.run("models", "train", opt["model_id"][:8])
    s.section("models state")
    s.run("models", "state", opt["model_id"][:8])
    s.run("models", "state", opt["model_id"][:8], "--json")
    s.heading("Results")
    s.section("optimizations results", "The text for people, then `--json`: the API object it is made from.")
    s.run("optimizations", "results", short)
    s.run("optimizations", "results", short, "--json")
    s.section("optimizations progress", "Days live, exposures and users per variant, the current best's traffic, and "
                                        "`estimated_progress`: how far the model is from calling a winner (docs/api.md "
                                        "6.9).")
    s.run("optimizations", "progress", short)
    s.section("optimizations lift-history", "One point per day a training run published (docs/api.md 6.10).")
    s.run("optimizations", "lift-history", short)
    s.section("optimizations guardrails", "Bandit traffic against the holdout on each guardrail metric, judged by an "
                                          "always-valid sequential test (mSPRT, docs/api.md 6.11 and 16.6): `pending` "
                                          "below 100 users per arm, then `ok` or `violated`; with `--auto-stop` a "
                                          "violation completes the optimization on the baseline, and `show`, `results` "
                                          "and the dashboard say so.")
    s.run("optimizations", "guardrails", short)
    s.section("optimizations report-data", "`--json` (or the default format) prints the whole pack, described field by "
                                           "field in [report-data.md](report-data.md); `--format csv --out DIR` "
                                           "writes one tidy table per file:")
    with tempfile.TemporaryDirectory() as out:
        s.run("optimizations", "report-data", short, "--format", "csv", "--out", out + "/hero")
        s.parts[-1] = s.parts[-1].replace(out, "/tmp/report")
    s.section("metrics usage", "Where a metric is used: reward of which optimizations, guardrail of which.")
    s.run("metrics", "usage", guard_id[:8])
    s.section("dashboard", "Interactive (Textual); `--once` prints one frame, for scripts:")
    s.run("dashboard", "--once")
    s.section("optimizations observations")
    s.run("optimizations", "observations", short, "--size", "5")
    s.section("optimizations update")
    s.run("optimizations", "update", short, "--status", "completed")
    s.section("optimizations archive", "Asks for confirmation on a terminal; without one it needs `-y`.")
    s.run("optimizations", "archive", short, "-y")
    s.section("models delete")
    s.run("models", "delete", opt["model_id"][:8], "-y")
    s.section("models create")
    s.run("models", "create", short)
    s.section("metrics delete")
    s.run("metrics", "delete", metric_id[:8], "-y")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=OUT, help="where to write (default docs/cli.md)")
    parser.add_argument("--port", type=int, help="port of the temporary server (default: a free one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LEVERED_HOME": f"{tmp}/home", "LEVERED_SITE_CONFIG": f"{tmp}/none.json",
               "COLUMNS": "100", "LEVERED_RATE_LIMIT_PER_MINUTE": "0", "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": "0",
               "LEVERED_MIN_TRAIN_OBSERVATIONS": "20",
               # The walk-through runs on an API key (a login needs a browser), so it lets keys manage keys.
               "LEVERED_API_KEYS_MANAGE_KEYS": "true"}
        for name in ("LEVERED_API_KEY", "LEVERED_API_URL", "LEVERED_ENV"):
            env.pop(name, None)
        os.environ["LEVERED_HOME"] = env["LEVERED_HOME"]  # synopsis() builds the app in this process
        session = Session(env)
        try:
            walkthrough(session, f"{tmp}/server", args.port or free_port())
        finally:
            subprocess.run([LEVERED, "server", "stop", "--data-dir", f"{tmp}/server"], env=env, capture_output=True,
                           check=False)
    header = ("# Command reference\n\nGenerated by `scripts/gen_cli_docs.py` from a real server; do not edit by "
              "hand. Every command also takes `--json` (the API object on stdout), `--api-url URL` and `--debug`; "
              "listers take cliff's `-f` and `-c`.\n\n")
    args.output.write_text(header + "\n".join([*session.parts, FAILURES]))
    print(f"wrote {args.output} ({len(session.documented)} commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
