"""API keys and opaque tokens: generation, peppered digests, constant-time comparison.

Keys carry 32 random bytes. Only ``HMAC-SHA256(pepper, key)`` is stored; a request's key
is always digested before lookup, so the stored digest is never accepted as a key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

KEY_PREFIX = "wrst_"
_REGISTRY_ALPHABET = string.ascii_uppercase


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_registry_code() -> str:
    return "".join(secrets.choice(_REGISTRY_ALPHABET) for _ in range(10))


class KeyDigester:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 32:
            raise ValueError("the pepper must have at least 32 bytes")
        self._pepper = pepper

    def digest(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, key: str, stored_digest: str | None) -> bool:
        if not stored_digest:
            return False
        return hmac.compare_digest(self.digest(key), stored_digest)


def token_digest(token: str) -> str:
    """Digest under which a docs-session token is stored (tokens are random, no pepper)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
