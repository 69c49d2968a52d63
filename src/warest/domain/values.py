"""Value rules for names used as identities."""

from __future__ import annotations

import re
from enum import StrEnum

from warest.domain.errors import InvalidValue
from warest.domain.text import checked

SESSION_ID_RE = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
USERNAME_RE = re.compile(r"^[a-zA-Z0-9._@-]{3,64}$")
REGISTRY_RE = re.compile(r"^[a-zA-Z0-9_-]{2,32}$")


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


def session_name(value: str, field: str = "sessionId") -> str:
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value):
        raise InvalidValue(field, "must be 1-64 characters of letters, digits, '.', '_' or '-'")
    return value


LABEL_MAX = 100


def label(value: str | None, field: str = "label") -> str | None:
    """A display label: printable text without control characters (it travels in a header)."""
    if value is None:
        return None
    checked(value, field, max_length=LABEL_MAX)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidValue(field, "must not contain control characters (line breaks, tabs, ...)")
    return value.strip() or None


def username(value: str, field: str = "username") -> str:
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise InvalidValue(field, "must be 3-64 characters of letters, digits, '.', '_', '@' or '-'")
    return value


def registry(value: str, field: str = "registry") -> str:
    if not isinstance(value, str) or not REGISTRY_RE.fullmatch(value):
        raise InvalidValue(field, "must be 2-32 characters of letters, digits, '_' or '-'")
    return value
