"""Request-parameter rules shared by the controllers: one way to name a bad field.

- ``invalid`` builds the envelope error for one bad field (400, the field, the reason, where
  it came from).
- ``Body`` is the base of every JSON request body: each string in it (in lists and objects
  too) obeys the text rule of ``warest.domain.text`` when the body is decoded, so NUL,
  unpaired surrogates and over-long text answer 400 naming the field, whatever the route.
- ``bounded`` / ``int_param`` / ``page_limit`` / ``Position``: integers outside the range a
  query can hold (or a page can have) answer 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, ClassVar

import msgspec

from warest.api.codes import Code
from warest.api.errors import ApiError
from warest.domain.errors import InvalidValue
from warest.domain.text import TEXT_MAX, checked, is_safe
from warest.domain.values import session_name

POSITION_MAX = 2**63 - 1
"""The largest position, offset or epoch value the database holds (a signed 64-bit integer)."""

NAME_MAX = 100
"""Bound for short display text: names, push names, labels."""

PASSWORD_MAX = 1024
"""Bound for passwords (hashing a longer one would only cost CPU)."""

MESSAGE_ID_MAX = 128
"""Bound for WhatsApp message ids given in a body (``replyMessageId``, ``quotedId``, ...)."""

SEARCH_MAX = 256
"""Bound for search terms and other short query text."""

Position = Annotated[int, msgspec.Meta(ge=0, le=POSITION_MAX)]
"""A body integer that is a log position, a count of milliseconds or an epoch value."""


def invalid(
    field: str, reason: str, *, code: Code = Code.INVALID_PARAMETER, source: str = "body"
) -> ApiError:
    """The envelope error for one bad field: which field, why, and where it came from."""
    return ApiError(
        code, f"Invalid '{field}': {reason}", [{"field": field, "reason": reason, "source": source}]
    )


class Body(msgspec.Struct, kw_only=True):
    """A JSON request body whose free text is checked where it is decoded.

    Every string (list items, object keys and values included) must be free of NUL and
    unpaired surrogates and at most ``TEXT_MAX`` characters; ``limits`` bounds named fields
    (by their JSON names) more tightly. A bad value raises ``InvalidValue`` naming the field,
    which the API answers with 400 / 2002.
    """

    limits: ClassVar[Mapping[str, int]] = {}
    whatsapp_text: ClassVar[frozenset[str]] = frozenset()
    """Fields (JSON names) that stand for text WhatsApp delivers (the sandbox control API plays
    WhatsApp's side): only their length is bounded, since WhatsApp's text cannot be refused and
    is made safe where it is written."""

    def __post_init__(self) -> None:
        # On every request (send/text included): the common case, a short safe string or
        # None, costs one length test and one regex scan.
        for attribute, name, max_length, as_whatsapp in _plan(type(self)):
            value = getattr(self, attribute)
            if value is None or isinstance(value, int | float):  # bool is an int
                continue
            if as_whatsapp and isinstance(value, str):
                if len(value) > max_length:
                    raise InvalidValue(name, f"must be at most {max_length} characters")
            elif isinstance(value, str):
                if len(value) > max_length or not is_safe(value):
                    checked(value, name, max_length=max_length)
            else:
                _check_value(value, name, max_length)


@cache
def _plan(body: type[Body]) -> tuple[tuple[str, str, int, bool], ...]:
    """(attribute, JSON name, length bound, WhatsApp's text) of each field of a body class."""
    return tuple(
        (attribute, name, body.limits.get(name, TEXT_MAX), name in body.whatsapp_text)
        for attribute, name in zip(body.__struct_fields__, body.__struct_encode_fields__, strict=True)
    )


def _check_value(value: Any, field: str, max_length: int) -> None:
    if isinstance(value, str):
        checked(value, field, max_length=max_length)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_value(item, field, max_length)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, field, max_length)
            _check_value(item, field, max_length)


def text_param(
    raw: str | None, field: str, *, max_length: int = SEARCH_MAX, source: str = "query"
) -> str | None:
    """A free-text query parameter (``search``, filters): the text rule, the field named."""
    if raw is None:
        return None
    try:
        return checked(raw, field, max_length=max_length)
    except InvalidValue as error:
        raise invalid(field, error.reason, source=source) from None


def bounded(value: int, field: str, low: int, high: int, *, source: str = "query") -> int:
    """``value`` if ``low <= value <= high``; otherwise 400 naming ``field``."""
    if not low <= value <= high:
        reason = f"must be at least {low}" if high == POSITION_MAX else f"must be between {low} and {high}"
        raise invalid(field, reason, source=source)
    return value


def int_param(
    raw: str | None,
    field: str,
    default: int,
    *,
    low: int = 0,
    high: int = POSITION_MAX,
    source: str = "query",
) -> int:
    """An integer parameter given as text (query, header): parsed and bounded."""
    if raw is None or raw.strip() == "":
        return default
    try:
        if not raw.isascii():
            raise ValueError(raw)
        value = int(raw.strip())
    except ValueError:
        raise invalid(field, "must be an integer", source=source) from None
    return bounded(value, field, low, high, source=source)


def page_limit(value: int, maximum: int, field: str = "limit") -> int:
    """A page size: 1 to ``maximum``."""
    return bounded(value, field, 1, maximum)


def offset_param(value: int, field: str = "offset") -> int:
    return bounded(value, field, 0, POSITION_MAX)


def session_param(raw: str | None, source: str = "query") -> str:
    """A ``sessionId`` parameter: required and well-formed (SESSION_REQUIRED otherwise)."""
    if not raw:
        raise ApiError(
            Code.SESSION_REQUIRED,
            "sessionId is required",
            [{"field": "sessionId", "reason": "missing", "source": source}],
        )
    try:
        return session_name(raw)
    except InvalidValue as error:
        raise ApiError(
            Code.SESSION_REQUIRED,
            "sessionId is invalid",
            [{"field": "sessionId", "reason": error.reason, "source": source}],
        ) from None


def session_not_found() -> ApiError:
    """Missing and foreign sessions get this same answer (no existence oracle)."""
    return ApiError(Code.SESSION_NOT_FOUND, "Session not found")
