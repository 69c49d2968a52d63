"""The text rule: validate at the boundary, project totally.

Text that arrives through the API can be refused: ``checked`` refuses what WhatsApp and the
read models cannot hold (NUL, unpaired UTF-16 surrogates) and bounds the length, naming the
field. Text that arrives from an engine (WhatsApp, the sandbox) cannot be refused: it is
recorded as received, and ``safe`` makes it storable where it is written (read-model text
columns, JSON documents, logs): each NUL and unpaired surrogate becomes U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

from warest.domain.errors import InvalidValue

REPLACEMENT = "\ufffd"
# NUL, and any code point in the surrogate block (a str holds them only unpaired).
_UNSAFE = re.compile("[\x00\ud800-\udfff]")

TEXT_MAX = 65_536
"""Default bound for free text (message bodies, captions, descriptions)."""


def is_safe(value: str) -> bool:
    return _UNSAFE.search(value) is None


def checked(value: str, field: str, *, max_length: int = TEXT_MAX) -> str:
    """``value`` unchanged, or ``InvalidValue`` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidValue(field, "must be a string")
    if _UNSAFE.search(value) is not None:
        raise InvalidValue(field, "must not contain NUL characters or unpaired surrogates")
    if len(value) > max_length:
        raise InvalidValue(field, f"must be at most {max_length} characters")
    return value


def checked_optional(value: str | None, field: str, *, max_length: int = TEXT_MAX) -> str | None:
    return None if value is None else checked(value, field, max_length=max_length)


def safe(value: str) -> str:
    """``value`` with each NUL and unpaired surrogate replaced by U+FFFD (never raises)."""
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(REPLACEMENT, value)


def safe_optional(value: str | None) -> str | None:
    return None if value is None else safe(value)


def safe_json(value: Any) -> Any:
    """A JSON-like value with every string in it (keys included) made ``safe``."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {safe(k) if isinstance(k, str) else k: safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value
