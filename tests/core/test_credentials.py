"""Auth files and API URL resolution (docs/api.md 14.3 and 14.4)."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from levered_core import config, credentials
from levered_core.errors import UsageError


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LEVERED_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEVERED_SITE_CONFIG", str(tmp_path / "site.json"))
    for name in ("LEVERED_API_KEY", "LEVERED_API_URL", "LEVERED_ENV"):
        monkeypatch.delenv(name, raising=False)


def session(url: str) -> credentials.Session:
    return credentials.Session("lva_" + "a" * 43, "lvr_" + "b" * 43, "2026-11-26T17:04:11Z", url)


def test_default_url_uses_the_plain_auth_file():
    path = credentials.save_session("prod", session("https://api.levered.dev"))
    assert path.name == "auth.prod.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_custom_url_gets_its_own_hashed_file_and_never_overwrites_prod():
    credentials.save_session("local", session("http://localhost:3100"))
    custom = credentials.save_session("local", session("http://127.0.0.1:4000"))
    digest = hashlib.sha256(b"http://127.0.0.1:4000").hexdigest()[:12]
    assert custom.name == f"auth.local.{digest}.json"
    assert credentials.load_session("local", "http://localhost:3100/") is not None
    assert credentials.load_session("local", "http://127.0.0.1:4000").api_url == "http://127.0.0.1:4000"


def test_wider_permissions_are_reset_with_a_warning(capsys):
    path = credentials.save_session("prod", session("https://api.levered.dev"))
    os.chmod(path, 0o644)
    assert credentials.load_session("prod", "https://api.levered.dev") is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "reset to 0600" in capsys.readouterr().err


def test_a_file_for_another_url_is_ignored():
    path = credentials.save_session("prod", session("https://api.levered.dev"))
    path.write_text(path.read_text().replace("https://api.levered.dev", "https://evil.example"))
    assert credentials.load_session("prod", "https://api.levered.dev") is None


def test_api_key_wins_over_the_stored_session(monkeypatch):
    credentials.save_session("prod", session("https://api.levered.dev"))
    assert credentials.bearer_token("prod", "https://api.levered.dev").startswith("lva_")
    monkeypatch.setenv("LEVERED_API_KEY", "lvk_key")
    assert credentials.bearer_token("prod", "https://api.levered.dev") == "lvk_key"


def test_delete_session_removes_only_that_url():
    credentials.save_session("local", session("http://localhost:3100"))
    credentials.save_session("local", session("http://127.0.0.1:4000"))
    assert credentials.delete_session("local", "http://127.0.0.1:4000") is True
    assert credentials.delete_session("local", "http://127.0.0.1:4000") is False
    assert credentials.load_session("local", "http://localhost:3100") is not None


def test_api_url_precedence(monkeypatch, tmp_path):
    (tmp_path / "site.json").write_text('{"api_url": "https://site.example", "environment": "testing"}')
    settings = config.Settings.load()
    assert config.resolve_api_url(settings) == "https://site.example"
    settings.user["api_url"] = "https://user.example"
    assert config.resolve_api_url(settings) == "https://user.example"
    monkeypatch.setenv("LEVERED_API_URL", "https://env.example")
    assert config.resolve_api_url(settings) == "https://env.example"
    assert config.resolve_api_url(settings, "HTTPS://Flag.Example:443/") == "https://flag.example"
    monkeypatch.delenv("LEVERED_API_URL")
    settings.user.pop("api_url")
    settings.site.pop("api_url")
    assert config.resolve_api_url(settings) == "https://api.testing.levered.dev"
    with pytest.raises(UsageError):
        config.resolve_api_url(settings, "localhost:3100")


@pytest.mark.parametrize("raw,normal", [
    ("http://LOCALHOST:3100/", "http://localhost:3100"),
    ("https://api.levered.dev:443", "https://api.levered.dev"),
    ("http://127.0.0.1:80/base/", "http://127.0.0.1/base"),
    ("http://[::1]:3100", "http://[::1]:3100"),
])
def test_normalize_url(raw, normal):
    assert config.normalize_url(raw) == normal


def test_a_session_remembers_who_logged_in_and_old_files_still_load():
    me = {"user": {"id": "u1", "email": "ada@acme.test", "name": "Ada"}, "organization": {"id": "o1", "name": "Acme"},
          "meta": {"request_id": "req_x"}}
    path = credentials.save_session("local", session("http://127.0.0.1:4000").with_identity(me))
    loaded = credentials.load_session("local", "http://127.0.0.1:4000")
    assert loaded.user == {"email": "ada@acme.test", "name": "Ada"} and loaded.organization == {"id": "o1", "name": "Acme"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old = credentials.save_session("prod", session("https://api.levered.dev"))  # as written before identities
    old.write_text('{"session_token": "lva_x", "refresh_token": null, "expires_at": null, '
                   '"api_url": "https://api.levered.dev"}')
    assert credentials.load_session("prod", "https://api.levered.dev").user is None


def test_stored_sessions_lists_the_files_load_session_would_read(tmp_path):
    credentials.save_session("prod", session("https://api.levered.dev"))
    credentials.save_session("local", session("http://127.0.0.1:4000"))
    home = tmp_path / "home"
    (home / "auth.nowhere.json").write_text('{"session_token": "x", "api_url": "https://api.levered.dev"}')
    (home / "auth.prod.000000000000.json").write_text('{"session_token": "x", "api_url": "https://evil.example"}')
    (home / "auth.prod.json.lock").write_text("")
    listed = [(env, s.api_url) for env, s in credentials.stored_sessions()]
    assert listed == [("local", "http://127.0.0.1:4000"), ("prod", "https://api.levered.dev")]
