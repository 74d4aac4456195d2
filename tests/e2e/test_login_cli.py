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
    assert "Not authenticated: run `levered login`" in run.stderr
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


def test_a_forged_callback_to_the_cli_fails_the_login(server, tmp_path):
    import requests

    home = tmp_path / "home"
    login = Login(home, "--no-browser", "--api-url", server.url)
    url = login.wait_for(AUTHORIZE_URL).group(1)
    redirect = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["redirect_uri"]
    requests.get(f"{redirect}?code=stolen&state=forged&iss={server.url}", timeout=10)
    code, out, err = login.finish()
    assert code != 0 and "wrong state" in err
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
