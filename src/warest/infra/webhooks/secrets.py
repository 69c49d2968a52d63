"""Sealing webhook secrets before they enter the event log (AES-256-GCM).

The key is derived from the server pepper (``WAREST_SECRET_KEY`` or ``secret.key``), so a
copy of the database alone does not reveal any endpoint's secret.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1:"
_CONTEXT = b"warest webhook secrets v1"


class AesSecretBox:
    def __init__(self, pepper: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(_CONTEXT + pepper).digest())

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), _CONTEXT)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        if not sealed.startswith(PREFIX):
            raise ValueError("not a sealed webhook secret")
        raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :])
        return self._aead.decrypt(raw[:12], raw[12:], _CONTEXT).decode("utf-8")
