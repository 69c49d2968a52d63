"""Request-parameter helpers shared by the controllers: one way to name a bad field."""

from __future__ import annotations

from warest.api.codes import Code
from warest.api.errors import ApiError
from warest.domain.errors import InvalidValue
from warest.domain.values import session_name


def invalid(
    field: str, reason: str, *, code: Code = Code.INVALID_PARAMETER, source: str = "body"
) -> ApiError:
    """The envelope error for one bad field: which field, why, and where it came from."""
    return ApiError(
        code, f"Invalid '{field}': {reason}", [{"field": field, "reason": reason, "source": source}]
    )


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
