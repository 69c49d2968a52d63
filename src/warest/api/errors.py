"""Every error becomes the envelope, with the field and the reason where there is one."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from warest.api.codes import BY_HTTP_STATUS, Code
from warest.api.envelope import Envelope, envelope
from warest.app.errors import Forbidden, LoginLocked, Unauthorized, Unavailable
from warest.app.manager import EngineUnavailable
from warest.app.ports import ConcurrencyConflict
from warest.domain.errors import AlreadyExists, DomainError, InvalidValue, NotFound, SessionNotFound

log = logging.getLogger("warest.api")


class ApiError(Exception):
    """Raised by controllers to answer with a given code."""

    def __init__(
        self,
        code: Code,
        message: str,
        results: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.results = results
        self.headers = headers


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Envelope]:
    return envelope(exc.code, exc.message, exc.results, headers=exc.headers)


_FIELD_PATTERNS = (re.compile(r"field `([^`]+)`"), re.compile(r"at `\$\.([^`]+)`"))


def _field_of(key: str | None, reason: str) -> str:
    """The offending field: Litestar names the whole body ``data``; msgspec names the field."""
    if key and key != "data":
        return key
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(reason)
        if match:
            return match.group(1)
    return "body"


def _is_malformed_json(detail: str) -> bool:
    low = detail.lower()
    return "json is malformed" in low or "malformed json" in low or "invalid json" in low


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Envelope]:
    problems = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            reason = str(item.get("message", "invalid value"))
            problems.append(
                {
                    "field": _field_of(item.get("key"), reason),
                    "reason": reason,
                    "source": item.get("source") or "body",
                }
            )
    detail = str(exc.detail)
    if not problems:
        if _is_malformed_json(detail):
            return envelope(Code.MALFORMED_JSON, f"Malformed JSON body: {detail}")
        return envelope(Code.BAD_REQUEST, detail)
    first = problems[0]
    missing = "missing" in first["reason"].lower() or "required" in first["reason"].lower()
    code = Code.MISSING_PARAMETER if missing else Code.INVALID_PARAMETER
    return envelope(code, f"Invalid '{first['field']}': {first['reason']}", problems)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Envelope]:
    code = BY_HTTP_STATUS.get(
        exc.status_code, Code.BAD_REQUEST if exc.status_code < 500 else Code.INTERNAL_ERROR
    )
    if exc.status_code == 400 and _is_malformed_json(str(exc.detail)):
        code = Code.MALFORMED_JSON
    headers = dict(exc.headers or {})
    message = exc.detail if exc.status_code < 500 else "Internal server error"
    return envelope(code, str(message), headers=headers)


def _domain(_: Request[Any, Any, Any], exc: DomainError) -> Response[Envelope]:
    if isinstance(exc, InvalidValue):
        return envelope(
            Code.INVALID_PARAMETER,
            f"Invalid '{exc.field}': {exc.reason}",
            [{"field": exc.field, "reason": exc.reason, "source": "body"}],
        )
    if isinstance(exc, SessionNotFound):  # the same answer for a foreign session: no oracle
        return envelope(Code.SESSION_NOT_FOUND, "Session not found")
    if isinstance(exc, NotFound):
        return envelope(Code.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        return envelope(Code.CONFLICT, str(exc))
    return envelope(Code.CONFLICT, str(exc))


OutageClassifier = Callable[[BaseException], bool]
Handler = Callable[[Request[Any, Any, Any], Exception], Response[Envelope]]
"""Whether an unhandled error means the database is out of reach (built in infra, injected
by the composition root: the HTTP layer does not know the drivers)."""

OUTAGE_RETRY_AFTER_S = 5


def _app(request: Request[Any, Any, Any], exc: Exception) -> Response[Envelope]:
    if isinstance(exc, LoginLocked):
        return envelope(
            Code.RATE_LIMITED,
            str(exc),
            [{"retryAfter": exc.retry_after_s}],
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, Unauthorized):
        return envelope(Code.UNAUTHORIZED, str(exc))
    if isinstance(exc, Forbidden):
        return envelope(Code.FORBIDDEN, str(exc))
    if isinstance(exc, ConcurrencyConflict):
        return envelope(Code.CONFLICT, "Another request changed this resource; retry")
    if isinstance(exc, EngineUnavailable):
        return envelope(Code.SERVICE_UNAVAILABLE, str(exc))
    if isinstance(exc, Unavailable):
        return envelope(Code.SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"})
    return _internal(request, exc)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Envelope]:
    # Log the failure, never the request body: it can hold secrets and message texts.
    log.error(
        "unhandled error on %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
    )
    return envelope(Code.INTERNAL_ERROR, "Internal server error")


def _unhandled(is_outage: OutageClassifier) -> Handler:
    """What no other handler answers: 503 with Retry-After when the database is out of reach
    (the request may succeed once it is back), else 500."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Envelope]:
        if not is_outage(exc):
            return _internal(request, exc)
        log.warning(
            "database unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc
        )
        return envelope(
            Code.SERVICE_UNAVAILABLE,
            "The database is unavailable; retry later",
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)},
        )

    return handle


def _never(_: BaseException) -> bool:
    return False


def exception_handlers(is_outage: OutageClassifier | None = None) -> dict[type[Exception] | int, Any]:
    """Litestar's handlers; ``is_outage`` tells a database outage (503) from a bug (500)."""
    return {
        ApiError: _api_error,
        ValidationException: _validation,
        HTTPException: _http,
        DomainError: _domain,
        Unauthorized: _app,
        Forbidden: _app,
        LoginLocked: _app,
        Unavailable: _app,
        ConcurrencyConflict: _app,
        EngineUnavailable: _app,
        Exception: _unhandled(is_outage or _never),
    }
