"""The server-side pepper for API-key digests.

``WAREST_SECRET_KEY`` when set (required when several hosts share one database);
otherwise a random key created once in ``<data dir>/secret.key`` with mode 0600.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path


def load_pepper(secret_key: str, data_dir: Path) -> bytes:
    if secret_key:
        return hashlib.sha256(secret_key.encode("utf-8")).digest()
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
