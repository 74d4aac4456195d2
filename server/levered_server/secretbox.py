"""Encryption at rest for warehouse credentials (Fernet, key in the data dir)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


class SecretBox:
    """Encrypts and decrypts small JSON objects with the server's key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def for_settings(cls, secret_key: str | None, data_dir: Path) -> SecretBox:
        """Use `LEVERED_SECRET_KEY` if set, else `<data_dir>/secret.key` (created 0600)."""
        if secret_key:
            digest = hashlib.sha256(secret_key.encode()).digest()
            return cls(base64.urlsafe_b64encode(digest))
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, value: dict[str, Any]) -> str:
        """Encrypt a JSON object."""
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        """Decrypt what `seal` produced."""
        result: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        return result
