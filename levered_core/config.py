"""CLI settings: ``$LEVERED_HOME/config.json``, the site-wide defaults, and their precedence.

Known keys are validated on write; keys the CLI does not know that are already in the file
are kept untouched. The contract is ``docs/api.md`` section 14.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from levered_core import statefile
from levered_core.errors import ConfigError, UsageError

ENVIRONMENTS = ("prod", "testing", "local")
DEFAULT_URLS = {
    "prod": "https://api.levered.dev",
    "testing": "https://api.testing.levered.dev",
    "local": "http://localhost:3100",
}
DEFAULT_SITE_CONFIG = "/etc/levered/config.json"


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _parse_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:3100")
    return value


def _parse_timeout(value: str) -> float | int:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 1 <= number <= 600:
        raise ValueError("must be between 1 and 600 seconds")
    return int(number) if number.is_integer() else number


def _parse_path(value: str) -> str:
    path = pathlib.Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path.resolve())


@dataclasses.dataclass(frozen=True)
class Key:
    """A known configuration key: its default, parser and one-line meaning."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("environment", "prod", _parse_choice(*ENVIRONMENTS),
            "prod, testing or local: selects the default API URL and the auth file"),
        Key("api_url", None, _parse_url,
            "overrides the environment's default API URL (LEVERED_API_URL overrides it)"),
        Key("output", "table", _parse_choice("table", "json"), "default output format"),
        Key("timeout", 30, _parse_timeout, "HTTP timeout of each request, in seconds (1-600)"),
        Key("ca_bundle", None, _parse_path, "PEM bundle of CA certificates for TLS"),
    )
}


def home() -> pathlib.Path:
    """Return the CLI state directory: ``$LEVERED_HOME`` or ``~/.levered``."""
    configured = os.environ.get("LEVERED_HOME")
    return pathlib.Path(configured).expanduser() if configured else pathlib.Path.home() / ".levered"


def config_path() -> pathlib.Path:
    """Return the path of the user's ``config.json``."""
    return home() / "config.json"


def site_config_path() -> pathlib.Path:
    """Return the path of the site-wide defaults file."""
    return pathlib.Path(os.environ.get("LEVERED_SITE_CONFIG") or DEFAULT_SITE_CONFIG)


def _read_object(path: pathlib.Path) -> dict[str, Any]:
    try:
        data = statefile.read_json(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}): fix or delete the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object: fix or delete the file")
    return data


def known_key(key: str) -> Key:
    """Return the known key named ``key``.

    :raises UsageError: the key is unknown; the message lists the known ones.
    """
    known = KEYS.get(key)
    if known is None:
        raise UsageError(f"unknown configuration key {key!r}; known keys: {', '.join(KEYS)}")
    return known


def read_site_plugins() -> dict[str, Any]:
    """Return the ``plugins`` object of the site config (allow, deny, override), or ``{}``.

    :raises ConfigError: the site file or its ``plugins`` value is malformed.
    """
    path = site_config_path()
    value = _read_object(path).get("plugins") or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: \"plugins\" must be an object with allow, deny or override")
    for name in ("allow", "deny"):
        names = value.get(name)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ConfigError(f"{path}: \"plugins\".\"{name}\" must be a list of group or distribution names, "
                              f"e.g. [\"config\"]: fix the site config")
    override = value.get("override")
    if override is not None and not (isinstance(override, dict) and all(isinstance(v, str) for v in override.values())):
        raise ConfigError(f"{path}: \"plugins\".\"override\" must map command names to distribution names: "
                          f"fix the site config")
    return value


def validate(key: str, value: str) -> Any:
    """Parse a value typed by a user for a known key.

    :raises UsageError: the key is unknown or the value is invalid.
    """
    known = known_key(key)
    try:
        return known.parse(value)
    except ValueError as exc:
        raise UsageError(f"invalid value for {key}: {exc}") from None


@dataclasses.dataclass
class Settings:
    """The settings in force: user file over site file over defaults."""

    user: dict[str, Any]
    site: dict[str, Any]

    @classmethod
    def load(cls) -> Settings:
        """Read the user and site files.

        :raises ConfigError: a file is not valid JSON or not an object.
        """
        return cls(user=_read_object(config_path()), site=_read_object(site_config_path()))

    def source(self, key: str) -> str:
        """Say where the effective value of ``key`` comes from."""
        if key == "environment" and os.environ.get("LEVERED_ENV"):
            return "env LEVERED_ENV"
        if key == "api_url" and os.environ.get("LEVERED_API_URL"):
            return "env LEVERED_API_URL"
        if key in self.user:
            return "user"
        if key in self.site:
            return "site"
        return "default"

    def get(self, key: str) -> Any:
        """Return the effective value of a known key (``api_url``: the URL the CLI would use).

        :raises UsageError: the environment or the API URL in force is invalid.
        """
        if key == "environment":
            return environment(self)
        if key == "api_url":
            return resolve_api_url(self)
        for layer in (self.user, self.site):
            if key in layer:
                return layer[key]
        return KEYS[key].default

    def checked(self, key: str) -> Any:
        """Return the effective value of ``key``, validated again if a file holds it.

        A hand-edited file may hold what ``config set`` would refuse (a timeout of ``"abc"``, a
        CA bundle since deleted); the command that needs the value then stops here, locally.

        :raises ConfigError: the value in force is invalid; the message names the file and the fix.
        """
        value = self.get(key)
        source = self.source(key)
        if value is None or source not in ("user", "site"):
            return value
        try:
            return KEYS[key].parse(str(value))
        except ValueError as exc:
            path = config_path() if source == "user" else site_config_path()
            raise ConfigError(f"{path}: invalid {key} {value!r}: {exc}; fix it with "
                              f"`levered config set {key} VALUE`") from None

    def effective(self) -> dict[str, Any]:
        """Return every known key with its effective value."""
        return {key: self.get(key) for key in KEYS}

    def set(self, key: str, raw: str) -> Any:
        """Validate and store ``key`` in the user file; an empty value removes it.

        :returns: the new effective value.
        :raises UsageError: unknown key or invalid value; nothing is written.
        """
        if raw == "":
            known_key(key)
            self.user.pop(key, None)
        else:
            self.user[key] = validate(key, raw)
        statefile.write_json(config_path(), self.user)
        return self.get(key)


def environment(settings: Settings) -> str:
    """Resolve the environment: ``LEVERED_ENV`` > user file > site file > ``prod``.

    :raises UsageError: ``LEVERED_ENV`` or a file names an unknown environment.
    """
    from_env = os.environ.get("LEVERED_ENV")
    value = from_env or settings.user.get("environment") or settings.site.get("environment") or "prod"
    if value not in ENVIRONMENTS:
        origin = "LEVERED_ENV" if from_env else "environment in the config"
        raise UsageError(f"{origin} is {value!r}; use one of {', '.join(ENVIRONMENTS)}")
    return str(value)


def normalize_url(url: str) -> str:
    """Normalize an API URL: lowercase scheme and host, no default port, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{scheme}://{host}{port}{parts.path.rstrip('/')}"


def resolve_api_url(settings: Settings, flag: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Resolve the API URL: flag > ``LEVERED_API_URL`` > user > site > environment default.

    :raises UsageError: the chosen URL is not an http(s) URL.
    """
    env = os.environ if env is None else env
    for candidate in (flag, env.get("LEVERED_API_URL"), settings.user.get("api_url"), settings.site.get("api_url")):
        if candidate:
            try:
                return normalize_url(_parse_url(str(candidate)))
            except ValueError as exc:
                raise UsageError(f"invalid API URL {candidate!r}: {exc}") from None
    return DEFAULT_URLS[environment(settings)]


def dumps(value: Any) -> str:
    """Render a setting's value for people (``null`` stays visible)."""
    return "" if value is None else (value if isinstance(value, str) else json.dumps(value))
