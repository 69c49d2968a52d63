"""Application codes of the response envelope (compatible with WAREST's code table)."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    SUCCESS = 1000
    CREATED = 1001
    ACCEPTED = 1002
    SCHEDULED = 1003
    PARTIAL_SUCCESS = 1004
    NOOP = 1005
    SESSION_REQUIRED = 1100
    SESSION_NOT_FOUND = 1101
    SESSION_OPEN = 1104
    SESSION_NOT_LOGGED_IN = 1106
    SESSION_QR_REQUIRED = 1107
    SESSION_RECONNECT_SCHEDULED = 1109
    SESSION_LOGIN_PENDING = 1110
    BAD_REQUEST = 2000
    MISSING_PARAMETER = 2001
    INVALID_PARAMETER = 2002
    CONFLICT = 2004
    PAYLOAD_TOO_LARGE = 2005
    UNSUPPORTED_MEDIA_TYPE = 2007
    MALFORMED_JSON = 2008
    METHOD_NOT_ALLOWED = 2010
    UNPROCESSABLE_ENTITY = 2012
    UNAUTHORIZED = 2200
    FORBIDDEN = 2201
    RATE_LIMITED = 2400
    NOT_FOUND = 2600
    DOWNSTREAM_ERROR = 2800
    SEND_FAILED = 3002
    MESSAGE_DELETE_FAILED = 4000
    MESSAGE_EDIT_NOT_ALLOWED = 4001
    MESSAGE_PIN_NOT_ALLOWED = 4003
    REACTION_FAILED = 4005
    INTERNAL_ERROR = 8000
    SERVICE_UNAVAILABLE = 8001


HTTP_STATUS: dict[Code, int] = {
    Code.SUCCESS: 200,
    Code.CREATED: 201,
    Code.ACCEPTED: 202,
    Code.SCHEDULED: 202,
    Code.PARTIAL_SUCCESS: 207,
    Code.NOOP: 200,
    Code.SESSION_REQUIRED: 400,
    Code.SESSION_NOT_FOUND: 404,
    Code.SESSION_OPEN: 200,
    Code.SESSION_NOT_LOGGED_IN: 409,
    Code.SESSION_QR_REQUIRED: 202,
    Code.SESSION_RECONNECT_SCHEDULED: 202,
    Code.SESSION_LOGIN_PENDING: 202,
    Code.BAD_REQUEST: 400,
    Code.MISSING_PARAMETER: 400,
    Code.INVALID_PARAMETER: 400,
    Code.CONFLICT: 409,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.MALFORMED_JSON: 400,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.UNPROCESSABLE_ENTITY: 422,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.RATE_LIMITED: 429,
    Code.NOT_FOUND: 404,
    Code.DOWNSTREAM_ERROR: 502,
    Code.SEND_FAILED: 502,
    Code.MESSAGE_DELETE_FAILED: 502,
    Code.MESSAGE_EDIT_NOT_ALLOWED: 403,
    Code.MESSAGE_PIN_NOT_ALLOWED: 403,
    Code.REACTION_FAILED: 502,
    Code.INTERNAL_ERROR: 500,
    Code.SERVICE_UNAVAILABLE: 503,
}

# The code used when an HTTP error has no more specific application code.
BY_HTTP_STATUS: dict[int, Code] = {
    400: Code.BAD_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    409: Code.CONFLICT,
    413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    422: Code.UNPROCESSABLE_ENTITY,
    429: Code.RATE_LIMITED,
    500: Code.INTERNAL_ERROR,
    502: Code.DOWNSTREAM_ERROR,
    503: Code.SERVICE_UNAVAILABLE,
}


_CATEGORIES = (
    (1100, "success"),
    (2000, "session"),
    (2200, "request"),
    (2400, "auth"),
    (2600, "rate_limit"),
    (2800, "resource"),
    (3000, "downstream"),
    (4000, "message"),
    (8000, "action"),
)


def _category(code: Code) -> str:
    return next((name for limit, name in _CATEGORIES if code < limit), "server")


def code_table() -> list[dict[str, object]]:
    return [
        {
            "app_code": int(code),
            "app_name": code.name,
            "message": code.name.replace("_", " ").capitalize(),
            "http_status": HTTP_STATUS[code],
            "category": _category(code),
        }
        for code in Code
    ]
