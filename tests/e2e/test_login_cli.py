"""The CLI's side of login against a real server, without a browser (issue 5 security tests).

`requests` plays the browser, so these run where Chromium is missing too: the state check,
transparent refresh of an expired token, a revoked session (exit 3), logout revoking on the
server, and tokens never printed, even with `--debug`.
"""

from __future__ import annotations

import json
import pathlib
import stat
import urllib.parse
from collections.abc import Iterator

import pytest

from levered_core.testing import run_cli
from tests.e2e.login_server import AUTHORIZE_URL, Login, LoginServer, approve_without_a_browser, start_server


@pytest.fixture(scope="module", autouse=True)
def _cheap_password_hashes():
    """The users are hashed here, in the test process: N=2**10, not the server's 2**17."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEVERED_PASSWORD_HASH_COST", "10")
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginServer]:
    yield from start_server(tmp_path_factory.mktemp("login-cli-server"))


def logged_in(server: LoginServer, home: pathlib.Path, email: str = "bob@acme.test") -> pathlib.Path:
    login = Login(home, "--no-browser", "--api-url", server.url)
    page = approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), email)
    assert "You can close this tab" in page
    code, out, err = login.finish()
    assert code == 0, err
    assert out.strip() == f"Logged in as {email} (Acme) at {server.url}"
    files = list(home.glob("auth.*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    return files[0]


def cli(server: LoginServer, home: pathlib.Path, *args: str):
    return run_cli(*args, home=home, env={"LEVERED_API_URL": server.url,
                                          "LEVERED_SITE_CONFIG": str(home / "no-site.json")})


def api_me(server: LoginServer, token: str) -> int:
    import requests

    return requests.get(f"{server.url}/api/v2/me", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).status_code


def test_login_picks_the_organization(server, tmp_path):
    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), "ada@acme.test", "Default")
    code, out, err = login.finish()
    assert code == 0 and out.strip() == f"Logged in as ada@acme.test (Default) at {server.url}", err


def test_an_expired_access_token_is_refreshed_once_transparently(server, tmp_path):
    home = tmp_path / "home"
    auth = logged_in(server, home)
    stored = json.loads(auth.read_text())
    stored["expires_at"] = "2000-01-01T00:00:00Z"
    auth.write_text(json.dumps(stored))
    auth.chmod(0o600)
    run = cli(server, home, "--debug", "whoami", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json["user"]["email"] == "bob@acme.test"
    fresh = json.loads(auth.read_text())
    assert fresh["session_token"] != stored["session_token"]
    assert fresh["refresh_token"] != stored["refresh_token"]
    assert (fresh["user"]["email"], fresh["organization"]["name"]) == ("bob@acme.test", "Acme")  # kept for auth status
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    for token in (*stored.values(), fresh["session_token"], fresh["refresh_token"]):
        if str(token).startswith(("lva_", "lvr_")):
            assert token not in run.stdout + run.stderr  # never printed, even with --debug
            assert token[4:16] not in run.stdout + run.stderr
    assert api_me(server, stored["session_token"]) == 200  # only the refresh token rotated


def test_a_401_refreshes_once_then_retries(server, tmp_path):
    import requests

    home = tmp_path / "home"
    auth = logged_in(server, home)
    stored = json.loads(auth.read_text())
    requests.post(f"{server.url}/oauth/revoke", timeout=10, data={
        "token": stored["session_token"], "client_id": "levered-cli"})
    run = cli(server, home, "optimizations", "list", "--json")
    assert run.exit_code == 0, run.stderr
    assert json.loads(auth.read_text())["session_token"] != stored["session_token"]


def test_a_revoked_session_says_run_levered_login(server, tmp_path):
    import requests

    home = tmp_path / "home"
    auth = logged_in(server, home)
    stored = json.loads(auth.read_text())
    requests.post(f"{server.url}/oauth/revoke", timeout=10, data={
        "token": stored["refresh_token"], "client_id": "levered-cli"})
    run = cli(server, home, "--debug", "whoami")
    assert run.exit_code == 3
    assert f"Not authenticated: the session for {server.url} has expired or was revoked; run `levered login`" \
        in run.stderr
    assert stored["session_token"] not in run.stdout + run.stderr
    assert stored["refresh_token"] not in run.stdout + run.stderr


def test_logout_revokes_on_the_server_and_deletes_the_file(server, tmp_path):
    home = tmp_path / "home"
    auth = logged_in(server, home)
    stored = json.loads(auth.read_text())
    run = cli(server, home, "logout", "--json")
    assert run.exit_code == 0 and run.json["revoked"] is True and run.json["logged_out"] is True
    assert not auth.exists()
    assert api_me(server, stored["session_token"]) == 401
    again = cli(server, home, "logout")
    assert again.exit_code == 0 and "Not logged in" in again.stdout
    who = cli(server, home, "whoami")
    assert who.exit_code == 3 and "levered login" in who.stderr


def test_a_forged_state_is_refused_and_nothing_is_stored(tmp_path, monkeypatch):
    from oauthlib.oauth2 import WebApplicationClient

    from levered_core import oauth

    monkeypatch.setenv("LEVERED_HOME", str(tmp_path))
    metadata = {"issuer": "http://127.0.0.1:9", "token_endpoint": "http://127.0.0.1:9/oauth/token"}

    class NoNetwork:
        def post(self, *args, **kwargs):
            raise AssertionError("the code must not be exchanged")

    client = WebApplicationClient("levered-cli")
    client.code_verifier = "v" * 43
    redirect = "http://127.0.0.1:5000/callback"
    for params, message in [({"code": "c", "state": "forged", "iss": metadata["issuer"]}, "wrong state"),
                            ({"code": "c", "iss": metadata["issuer"]}, "wrong state"),
                            ({"code": "c", "state": "right-state", "iss": "http://evil"}, "issuer")]:
        url = f"{redirect}?{urllib.parse.urlencode(params)}"
        with pytest.raises(oauth.LoginError, match=message):
            oauth._finish_code_flow(NoNetwork(), "http://127.0.0.1:9", metadata, client, url,
                                    "right-state", redirect)
    assert not list(tmp_path.glob("auth.*"))


@pytest.mark.parametrize(("answer", "page_says", "cli_says"), [
    ({"code": "stolen", "state": "forged"}, "Login failed: the login answer carried the wrong state", "wrong state"),
    ({"code": "stolen"}, "Login failed: the login answer carried the wrong state", "wrong state"),
    ({"state": "<the right one>"}, "Login failed: the login answer carried no authorization code",
     "no authorization code"),
])
def test_a_forged_callback_to_the_cli_fails_the_login(server, tmp_path, answer, page_says, cli_says):
    import requests

    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    url = login.wait_for(AUTHORIZE_URL).group(1)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    answer = {k: query["state"] if v == "<the right one>" else v for k, v in answer.items()}
    page = requests.get(query["redirect_uri"], params={**answer, "iss": server.url}, timeout=10)
    assert page.status_code == 400
    assert page_says in page.text and "Logged in" not in page.text
    code, out, err = login.finish()
    assert code != 0 and cli_says in err
    assert not list(home.glob("auth.*.json"))


def test_denying_in_the_browser_fails_the_login_and_stores_nothing(server, tmp_path):
    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    page = approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), "bob@acme.test",
                                     decision="deny")
    assert "Login failed" in page
    code, out, err = login.finish()
    assert code != 0 and "access_denied" in err
    assert not list(home.glob("auth.*.json"))


def test_a_refused_api_key_says_so_not_run_levered_login(server, tmp_path):
    home = tmp_path / "home"
    logged_in(server, home)
    created = cli(server, home, "auth", "api-keys", "create", "--name", "ci", "--json")
    assert created.exit_code == 0, created.stderr
    assert cli(server, home, "auth", "api-keys", "revoke", created.json["id"], "--yes").exit_code == 0
    for key in (created.json["secret"], "lvk_" + "x" * 43):  # revoked, unknown
        run = run_cli("whoami", home=home, env={"LEVERED_API_URL": server.url, "LEVERED_API_KEY": key})
        assert run.exit_code == 3
        assert "Not authenticated: the API key in LEVERED_API_KEY was refused (invalid or revoked); " \
               "create a new key, or unset it and run `levered login`" in run.stderr
        assert key not in run.stderr
    assert cli(server, home, "whoami").exit_code == 0  # the login still works once the key is unset


def _stop(login: Login) -> str:
    login.process.terminate()
    return login.finish()[2]


@pytest.mark.parametrize(("env", "reason"), [
    ({"SSH_CONNECTION": "203.0.113.1 50000 203.0.113.2 22"}, "this is an SSH session without a display"),
    ({"PATH": "/nonexistent"}, "no web browser was found and there is no display"),
])
def test_login_says_why_it_chose_the_device_flow(server, tmp_path, monkeypatch, env, reason):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    login = Login(tmp_path / "home", "--api-url", server.url)
    login.wait_for(r"enter the code")
    err = _stop(login)
    assert f"Using the device flow: {reason} (--no-browser prints a URL" in err
    assert err.index("Using the device flow") < err.index("enter the code")


def test_login_with_device_asked_for_gives_no_reason(server, tmp_path):
    login = Login(tmp_path / "home", "--device", "--api-url", server.url)
    login.wait_for(r"enter the code")
    assert "Using the device flow" not in _stop(login)


def test_login_warns_that_levered_api_key_takes_precedence(server, tmp_path, monkeypatch):
    from tests.e2e import login_server

    plain = login_server.cli_env
    monkeypatch.setattr(login_server, "cli_env", lambda home: {**plain(home), "LEVERED_API_KEY": "lvk_" + "k" * 43})
    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), "bob@acme.test")
    code, out, err = login.finish()
    assert code == 0 and out.startswith("Logged in as bob@acme.test"), err
    assert "warning: LEVERED_API_KEY is set and takes precedence over this login; " \
           "unset it for commands to use the login." in err
    assert "lvk_" not in err
    assert list(home.glob("auth.*.json"))


def test_logging_in_again_revokes_the_previous_session(server, tmp_path):
    home = tmp_path / "home"
    auth = logged_in(server, home)
    old = json.loads(auth.read_text())
    logged_in(server, home)
    new = json.loads(auth.read_text())
    assert new["session_token"] != old["session_token"]
    assert api_me(server, old["session_token"]) == 401  # the whole old family is revoked
    assert api_me(server, new["session_token"]) == 200
    import requests

    replay = requests.post(f"{server.url}/oauth/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": old["refresh_token"], "client_id": "levered-cli"})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert cli(server, home, "whoami").exit_code == 0


def _plain(home: pathlib.Path, *args: str):
    """`levered` with no LEVERED_API_URL: the URL comes from the config, as after a real login."""
    return run_cli(*args, home=home, env={"LEVERED_SITE_CONFIG": str(home / "no-site.json")})


@pytest.mark.parametrize("where", ["after", "before"])
def test_login_with_api_url_makes_it_the_server_of_later_commands(server, tmp_path, where):
    home = tmp_path / "home"
    flag = ("--api-url", server.url)
    login = Login(home, "--no-browser", *(flag if where == "after" else ()), before=flag if where == "before" else ())
    approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), "bob@acme.test")
    code, out, err = login.finish()
    assert code == 0 and out.strip() == f"Logged in as bob@acme.test (Acme) at {server.url}", err
    assert f"Later commands use {server.url} (api_url in {home / 'config.json'})." in err
    assert stat.S_IMODE((home / "config.json").stat().st_mode) == 0o600
    who = _plain(home, "whoami", "--json")
    assert who.exit_code == 0 and who.json["user"]["email"] == "bob@acme.test", who.stderr
    assert _plain(home, "config", "get", "api_url").stdout == f"{server.url}\n"
    status = _plain(home, "auth", "status", "--json").json
    assert status["current"] == {"api_url": server.url, "environment": "prod", "api_url_source": "user",
                                 "credential": "session"}
    assert [(s["api_url"], s["user"]["email"], s["organization"]["name"], s["current"])
            for s in status["sessions"]] == [(server.url, "bob@acme.test", "Acme", True)]
    # Until `config set api_url`: then commands go there, and say where they found no session.
    assert _plain(home, "config", "set", "api_url", "http://127.0.0.1:9").exit_code == 0
    elsewhere = _plain(home, "whoami")
    assert elsewhere.exit_code == 3
    assert elsewhere.stderr == ("Error: Not authenticated: no session for http://127.0.0.1:9; run `levered login` "
                                "or set LEVERED_API_KEY\n")


def test_login_without_api_url_leaves_the_remembered_server_alone(server, tmp_path):
    home = tmp_path / "home"
    logged_in(server, home)
    config = (home / "config.json").read_text()
    login = Login(home, "--no-browser")  # the URL in force: the remembered one
    approve_without_a_browser(login.wait_for(AUTHORIZE_URL).group(1), "ada@acme.test", "Default")
    code, out, err = login.finish()
    assert code == 0 and out.strip() == f"Logged in as ada@acme.test (Default) at {server.url}", err
    assert "Later commands use" not in err
    assert (home / "config.json").read_text() == config
    assert _plain(home, "whoami", "--json").json["organization"]["name"] == "Default"
