"""Encryption at rest for warehouse credentials (Fernet).

The key comes from configuration shared by every replica (`LEVERED_SECRET_KEY`, or the file
named by `LEVERED_SECRET_KEY_FILE`), else, on SQLite state only, from `<data_dir>/secret.key`
(created on first use). `LEVERED_SECRET_KEY_PREVIOUS` lists older keys that still open tokens
but never seal new ones (MultiFernet), for rotation; `keycheck.py` re-seals under the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from levered_server.errors import StartRefused

if TYPE_CHECKING:
    from levered_server.settings import Settings

KEY_FILE = "secret.key"
GENERATE_HINT = "generate one with `levered-server --generate-secret-key`"


class SecretBox:
    """Encrypts and decrypts small JSON objects with the server's key."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = (), *,
                 source: str = "LEVERED_SECRET_KEY") -> None:
        self._fernet = Fernet(key)
        older = [Fernet(k) for k in dict.fromkeys(previous) if k != key]
        self._any = MultiFernet([self._fernet, *older])  # opens with any, seals with the first
        self.source = source  # where the current key came from, for messages
        # A key of its own for derive(), so derived values never reuse Fernet's key directly.
        self._derive_key = hmac.new(bytes(key), b"levered-secretbox-derive", hashlib.sha256).digest()

    @classmethod
    def for_settings(cls, secret_key: str | None, data_dir: Path) -> SecretBox:
        """Use `LEVERED_SECRET_KEY` if set, else `<data_dir>/secret.key` (created 0600)."""
        if secret_key:
            return cls(fernet_key(secret_key))
        return cls(_data_dir_key(data_dir), source=str(data_dir / KEY_FILE))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of a server's configuration: key, key file or data-dir key, previous keys.

        A data-dir key left from before a key was configured is accepted as a previous key,
        so what it sealed is re-sealed under the configured key at the next start.

        :raises StartRefused: no usable key (none configured on PostgreSQL state, both
            `LEVERED_SECRET_KEY` and `LEVERED_SECRET_KEY_FILE`, an unreadable or empty file).
        """
        previous = [k for text in settings.secret_key_previous for k in _previous_keys(text)]
        secret, source = _configured(settings)
        if secret is None:
            if not settings.sqlalchemy_url.startswith("sqlite"):
                raise StartRefused(
                    "the state database is PostgreSQL, so every replica needs the same secret key: "
                    f"set LEVERED_SECRET_KEY (or LEVERED_SECRET_KEY_FILE) on each; {GENERATE_HINT}")
            return cls(_data_dir_key(settings.data_dir), previous,
                       source=str(settings.data_dir / KEY_FILE))
        left = settings.data_dir / KEY_FILE
        if left.exists() and _is_fernet_key(left.read_bytes().strip()):
            previous.append(left.read_bytes().strip())
        return cls(fernet_key(secret), previous, source=source)

    def seal(self, value: dict[str, Any]) -> str:
        """Encrypt a JSON object."""
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        """Decrypt what `seal` produced (under the current key or a previous one)."""
        result: dict[str, Any] = json.loads(self._any.decrypt(token.encode()))
        return result

    def opens(self, token: str, *, current_only: bool = False) -> bool:
        """Whether the current key (or, unless `current_only`, any key) opens `token`."""
        try:
            (self._fernet if current_only else self._any).decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, token: str) -> str:
        """The same content sealed under the current key.

        :raises InvalidToken: no key opens it.
        """
        return self._any.rotate(token.encode()).decode()

    def use_derive_seed(self, seed: str) -> None:
        """Derive from a stored seed instead of the key (keycheck.py), so values survive a key
        rotation."""
        self._derive_key = hmac.new(seed.encode(), b"levered-secretbox-derive",
                                    hashlib.sha256).digest()

    def derive(self, label: str) -> str:
        """A secret for `label`, the same on every server with the same key (HMAC-SHA256, hex)."""
        return hmac.new(self._derive_key, label.encode(), hashlib.sha256).hexdigest()


def fernet_key(secret: str) -> bytes:
    """The Fernet key of a configured secret: any string, through SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


def generate_secret() -> str:
    """A new random secret for `LEVERED_SECRET_KEY` (256 bits, URL-safe)."""
    import secrets

    return secrets.token_urlsafe(32)


def _configured(settings: Settings) -> tuple[str | None, str]:
    if settings.secret_key and settings.secret_key_file:
        raise StartRefused("set LEVERED_SECRET_KEY or LEVERED_SECRET_KEY_FILE, not both")
    if settings.secret_key:
        return settings.secret_key, "LEVERED_SECRET_KEY"
    if settings.secret_key_file is None:
        return None, ""
    path = Path(settings.secret_key_file).expanduser()
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise StartRefused(f"cannot read LEVERED_SECRET_KEY_FILE {path}: {reason}") from None
    if not text:
        raise StartRefused(f"LEVERED_SECRET_KEY_FILE {path} is empty; {GENERATE_HINT}")
    return text, f"LEVERED_SECRET_KEY_FILE {path}"


def _previous_keys(text: str) -> list[bytes]:
    """A previous secret as configured; also as a raw Fernet key when it is one (the content
    of an old `<data_dir>/secret.key`), so either kind can be named."""
    return [fernet_key(text)] + ([text.encode()] if _is_fernet_key(text.encode()) else [])


def _is_fernet_key(value: bytes) -> bool:
    try:
        return len(value) == 44 and len(base64.urlsafe_b64decode(value)) == 32
    except ValueError:
        return False


def _data_dir_key(data_dir: Path) -> bytes:
    """`<data_dir>/secret.key`, created (0600) with a new key if missing."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return path.read_bytes().strip()
