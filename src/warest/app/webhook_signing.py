"""Webhook signatures: the WAREST-compatible scheme and Standard Webhooks v1.

Two schemes sign the exact bytes of the request body:

* **WAREST** (compatibility with the Node.js original): ``X-WAREST-Signature:
  HMAC-SHA256=<lowercase hex>``, an HMAC over the raw body with the SHA-2 variant chosen by
  configuration, keyed with the UTF-8 bytes of ``secret + username`` (empty username when the
  owner has none). The token names the algorithm (``HMAC-SHA224|256|384|512``). The header
  always carries exactly one value, signed with the newest secret: the original's example
  receivers split it on ``=`` and would fail on a list. While a rotated secret is in its
  grace period, its signature goes in ``X-WAREST-Signature-Previous`` (same format), which
  those receivers ignore.
* **Standard Webhooks v1**: ``webhook-signature: v1,<base64>``, an HMAC-SHA256 over
  ``"{msg_id}.{timestamp}.{body}"``. Several space-separated signatures are sent while a key
  is rotated; a verifier accepts any match and ignores versions it does not know.

Secrets. Generated secrets look like ``whsec_<base64 of 32 random bytes>``. A user may also
supply any other string of at least 24 characters. How a secret becomes key bytes:

* WAREST scheme: always the UTF-8 bytes of the secret string as given (``whsec_`` prefix
  included) followed by the username, as the original does.
* Standard Webhooks: a ``whsec_`` secret is base64-decoded after the prefix, as the spec and
  its reference library do. **Any other secret is used as its raw UTF-8 bytes** (it is not
  base64-decoded: an arbitrary passphrase is rarely valid base64, and a lenient decoder would
  silently drop characters). A receiver using the reference ``standardwebhooks`` library
  verifies such a secret with ``Webhook(secret.encode("utf-8"))`` (bytes are used raw), or
  with ``Webhook("whsec_" + base64(secret))``.

Pure standard library: this module is shared by the sender, the docs and the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Mapping, Sequence

SHA2 = frozenset({"224", "256", "384", "512"})
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_CHARS = 24
MAX_SECRET_CHARS = 512
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
DEFAULT_TOLERANCE_S = 300

HEADER_WAREST_SIGNATURE = "x-warest-signature"
HEADER_WAREST_SIGNATURE_PREVIOUS = "x-warest-signature-previous"
HEADER_WAREST_ALGORITHM = "x-warest-signature-alg"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

_STANDARD_VERSION = "v1"


class SignatureInvalid(Exception):
    """A webhook signature did not verify; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- SHA-2 variant -------------------------------------------------------------------------


def parse_sha2(value: str) -> str:
    """Normalise ``"256"``, ``"sha256"``, ``"SHA-256"``, ``"HMAC-SHA512"`` ... to ``"256"`` etc.

    Unknown values raise ``ValueError`` (the original silently fell back to SHA-256).
    """
    text = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    text = text.removeprefix("hmac").removeprefix("sha")
    if text not in SHA2:
        raise ValueError(f"unsupported SHA-2 variant {value!r}: use one of 224, 256, 384, 512")
    return text


def warest_algorithm(sha2: str = "256") -> str:
    """The algorithm token, e.g. ``HMAC-SHA256`` (``X-WAREST-Signature-Alg``)."""
    return f"HMAC-SHA{parse_sha2(sha2)}"


# --- WAREST scheme -------------------------------------------------------------------------


def _warest_digest(body: bytes, secret: str, username: str | None, sha2: str) -> str:
    key = (secret + (username or "")).encode("utf-8")
    return hmac.new(key, body, f"sha{parse_sha2(sha2)}").hexdigest()


def warest_signature(body: bytes, secret: str, username: str | None, sha2: str = "256") -> str:
    """The ``X-WAREST-Signature`` value: ``HMAC-SHA256=<lowercase hex>``."""
    return f"{warest_algorithm(sha2)}={_warest_digest(body, secret, username, sha2)}"


def warest_signature_headers(
    body: bytes, secrets: Sequence[str], username: str | None, sha2: str = "256"
) -> dict[str, str]:
    """The WAREST signature headers for ``secrets`` (newest first): ``X-WAREST-Signature``
    with the newest alone, ``X-WAREST-Signature-Previous`` with the older ones (comma-
    separated; in practice one) when there are any, and ``X-WAREST-Signature-Alg``."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    headers = {
        HEADER_WAREST_SIGNATURE: warest_signature(body, secrets[0], username, sha2),
        HEADER_WAREST_ALGORITHM: warest_algorithm(sha2),
    }
    if len(secrets) > 1:
        headers[HEADER_WAREST_SIGNATURE_PREVIOUS] = ", ".join(
            warest_signature(body, secret, username, sha2) for secret in secrets[1:]
        )
    return headers


def verify_warest(
    body: bytes, header_value: str | None, secret: str, username: str | None, sha2: str = "256"
) -> None:
    """Check an ``X-WAREST-Signature`` header; raise ``SignatureInvalid`` when it does not match."""
    if not header_value:
        raise SignatureInvalid("missing signature header")
    token, sep, digest = header_value.strip().partition("=")
    if not sep or token.upper() != warest_algorithm(sha2):
        raise SignatureInvalid(f"expected a {warest_algorithm(sha2)}=<hex> signature")
    expected = _warest_digest(body, secret, username, sha2)
    if not hmac.compare_digest(digest.lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise SignatureInvalid("signature does not match")


# --- Standard Webhooks v1 ------------------------------------------------------------------


def standard_key(secret: str) -> bytes:
    """Key bytes of a secret: base64 after ``whsec_``, else the raw UTF-8 bytes (see module doc)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error as error:
            raise ValueError("the part after whsec_ is not valid base64") from error
    return secret.encode("utf-8")


def standard_signature(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """One ``v1,<base64>`` signature of ``"{msg_id}.{timestamp}.{body}"``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return f"{_STANDARD_VERSION},{base64.b64encode(digest).decode('ascii')}"


def standard_signatures(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one signature per secret (current, then previous ...)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(standard_signature(msg_id, timestamp, body, secret) for secret in secrets)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def _timestamp(value: str, tolerance_s: int, now: int | None) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise SignatureInvalid("invalid webhook-timestamp header")
    timestamp = int(text)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureInvalid("webhook-timestamp is outside the tolerance")
    return timestamp


def _offered_v1(header_value: str) -> list[bytes]:
    offered = []
    for item in header_value.split():
        version, sep, signature = item.partition(",")
        if sep and version == _STANDARD_VERSION:
            offered.append(signature.encode("ascii", "replace"))
    return offered


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> None:
    """Verify ``webhook-id/-timestamp/-signature``; raise ``SignatureInvalid`` unless one matches.

    Header names are matched case-insensitively. Unknown signature versions are ignored; every
    comparison is constant-time. ``now`` (Unix seconds) is for tests.
    """
    msg_id = _header(headers, HEADER_ID)
    raw_timestamp = _header(headers, HEADER_TIMESTAMP)
    raw_signatures = _header(headers, HEADER_SIGNATURE)
    if not msg_id or not raw_timestamp or not raw_signatures:
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature header")
    timestamp = _timestamp(raw_timestamp, tolerance_s, now)
    offered = _offered_v1(raw_signatures)
    matched = False
    for secret in secrets:
        expected = standard_signature(msg_id, timestamp, body, secret).partition(",")[2].encode()
        for signature in offered:
            matched |= hmac.compare_digest(signature, expected)
    if not matched:
        raise SignatureInvalid("no signature matches")


# --- Secrets -------------------------------------------------------------------------------


def new_webhook_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def validate_secret(secret: str) -> None:
    """Raise ``ValueError`` with a reason unless ``secret`` is acceptable for both schemes.

    Accepted: a ``whsec_`` secret whose key decodes (strict base64) to 24-64 bytes, or any
    other string of 24-512 characters without leading or trailing whitespace (used as raw
    UTF-8 bytes, see the module docstring).
    """
    if secret.startswith(SECRET_PREFIX):
        key = standard_key(secret)
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise ValueError(
                f"a whsec_ secret must decode to {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, got {len(key)}"
            )
        return
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"the secret must have at least {MIN_SECRET_CHARS} characters")
    if len(secret) > MAX_SECRET_CHARS:
        raise ValueError(f"the secret must have at most {MAX_SECRET_CHARS} characters")
    if secret != secret.strip():
        raise ValueError("the secret must not start or end with whitespace")
