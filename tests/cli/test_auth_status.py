"""``levered auth status``: stored sessions, the one in use and why, read from the auth files only."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from levered_auth.sessions import expires

LOCAL = "http://127.0.0.1:4000"


def _in(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def store(home, monkeypatch):
    """Write a session the way `levered login` does (atomically, mode 0600) into the test's home."""
    from levered_core import credentials

    monkeypatch.setenv("LEVERED_HOME", str(home))

    def save(env: str, url: str, email: str | None = "bob@acme.test", org: str = "Acme", hours: float = 20,
             refresh: bool = True) -> None:
        session = credentials.Session("lva_" + "a" * 43, "lvr_" + "b" * 43 if refresh else None, _in(hours), url)
        if email:
            session = session.with_identity({"user": {"id": "u", "email": email, "name": "Bob"},
                                             "organization": {"id": "o1", "name": org}})
        credentials.save_session(env, session)

    return save


def test_no_session_says_which_url_is_in_force_and_how_to_log_in(cli):
    run = cli("auth", "status")
    assert run.exit_code == 0, run.stderr
    assert run.stdout == "(none)\n"
    assert run.stderr == ("Commands use https://api.levered.dev (from the default of environment prod; environment "
                          "prod), which has no stored session: run `levered login` or set LEVERED_API_KEY.\n")
    flagged = cli("--api-url", LOCAL, "auth", "status")
    assert f"run `levered login --api-url {LOCAL}`" in flagged.stderr and "from the --api-url flag" in flagged.stderr
    assert cli("auth", "status", "--json").json == {
        "current": {"api_url": "https://api.levered.dev", "environment": "prod", "api_url_source": "default",
                    "credential": None},
        "sessions": []}


def test_sessions_are_listed_and_the_one_of_the_url_in_force_is_marked(cli, store, home):
    store("prod", "https://api.levered.dev", email="ada@acme.test", org="Default", hours=-2)
    store("prod", LOCAL, hours=5.5)
    store("local", "http://localhost:3100", email=None, refresh=False, hours=-1)  # written before identities
    assert cli("config", "set", "api_url", LOCAL + "/").exit_code == 0
    run = cli("auth", "status")
    assert run.exit_code == 0, run.stderr
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in run.stdout.splitlines()[3:-1]]
    assert rows == [
        ["*", "http://127.0.0.1:4000", "prod", "bob@acme.test", "Acme", "in 5h"],
        ["", "http://localhost:3100", "local", "-", "-", "expired"],
        ["", "https://api.levered.dev", "prod", "ada@acme.test", "Default", "expired, renews on use"],
    ]  # sorted by URL
    data = cli("auth", "status", "-f", "json").json  # -f prints the values, the table humanizes them
    assert [(row["Current"], row["User"], row["Expires"][:4]) for row in data] == [
        (True, "bob@acme.test", _in(0)[:4]), (False, None, _in(0)[:4]), (False, "ada@acme.test", _in(0)[:4])]
    assert run.stderr == (f"Commands use {LOCAL} (from api_url in {home / 'config.json'}; environment prod) with its "
                          "stored session (marked *).\n")
    document = cli("auth", "status", "--json").json
    assert document["current"] == {"api_url": LOCAL, "environment": "prod", "api_url_source": "user",
                                   "credential": "session"}
    first = document["sessions"][0]
    assert first == {"api_url": LOCAL, "environment": "prod", "user": {"email": "bob@acme.test", "name": "Bob"},
                     "organization": {"id": "o1", "name": "Acme"}, "expires_at": first["expires_at"],
                     "refreshable": True, "current": True}
    assert [s["current"] for s in document["sessions"]] == [True, False, False]
    assert "lva_" not in run.stdout + run.stderr and "lva_" not in str(document)
    assert all(oct(os.stat(path).st_mode & 0o777) == "0o600" for path in home.glob("auth.*.json"))


def test_an_api_key_is_what_commands_use_while_it_is_set(cli, store):
    store("prod", "https://api.levered.dev")
    run = cli("auth", "status", env={"LEVERED_API_KEY": "lvk_" + "k" * 43})
    assert run.stdout.startswith("+") and "*" not in run.stdout
    assert run.stderr.endswith("with LEVERED_API_KEY: stored sessions are ignored while it is set.\n")
    assert "lvk_" not in run.stdout + run.stderr
    document = cli("auth", "status", "--json", env={"LEVERED_API_KEY": "lvk_" + "k" * 43}).json
    assert document["current"]["credential"] == "api_key" and document["sessions"][0]["current"] is False


def test_files_that_would_not_be_used_are_not_listed(cli, store, home):
    store("prod", LOCAL)
    (home / "auth.staging.json").write_text('{"session_token": "x", "api_url": "https://api.levered.dev"}')
    moved = next(home.glob("auth.prod.*.json"))
    moved.rename(home / "auth.prod.000000000000.json")  # the name no longer matches its URL
    assert cli("auth", "status", "--json").json["sessions"] == []


@pytest.mark.parametrize("hours,refreshable,says", [(49, True, "in 2d"), (0.5, True, "in 30m"), (0.001, True, "in <1m"),
                                                    (-1, True, "expired, renews on use"), (-1, False, "expired")])
def test_expiry_for_people(hours, refreshable, says):
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    at = (now + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expires({"expires_at": at, "refreshable": refreshable}, now) == says
    assert expires({"expires_at": None}, now) == "-"


def test_login_help_shows_api_url_as_the_reference_writes_it(cli):
    run = cli("login", "--help")
    assert run.exit_code == 0
    assert run.stdout.startswith("usage: levered login [-h] [--json] [--api-url URL] [--no-browser] [--device]\n")
    assert "levered auth status` lists" in " ".join(run.stdout.split())
