"""Input guards in front of the controllers: what no route can take is refused at once.

- ``InputGuardMiddleware``: a NUL (or an unpaired surrogate) in the path or in a query
  parameter answers 400 / 2002 naming it, before any route reads it (PostgreSQL cannot hold
  such text, and no identifier or filter of ours contains it).
- ``GuardedRequest``: the request class of the app. Its JSON decoding refuses bodies nested
  deeper than ``MAX_JSON_DEPTH`` before decoding them (the decoder recurses: a 2 KB body of
  a thousand brackets would exhaust the interpreter's stack), and answers every malformed
  body with 400 / 2008 and a clear reason. A body the server could not read (a malformed
  chunked encoding) answers 400 / 2000 instead of the framework's 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import InternalServerException, SerializationException
from litestar.types import ASGIApp, Receive, Scope, Send

from warest.api.codes import Code
from warest.api.errors import ApiError
from warest.api.params import invalid
from warest.domain.text import is_safe

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have (ours need 4)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_DISCONNECTED = "client disconnected prematurely"  # Litestar's words for http.disconnect
BODY_CUT_SHORT = "The request body is malformed or incomplete (e.g. a chunk size that is not hexadecimal)"
_UNSAFE_TEXT = "must not contain NUL characters or unpaired surrogates"


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (brackets in strings
    do not count). Cheap for ordinary bodies: with at most ``limit`` opening brackets in
    all, it cannot."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


def malformed_json(body: bytes, detail: str) -> ApiError:
    if _SURROGATE_ESCAPE.search(body) and ("truncated" in detail or "surrogate" in detail):
        detail = "a \\uD800-\\uDFFF escape must be one half of a surrogate pair"
    return ApiError(Code.MALFORMED_JSON, f"Malformed JSON body: {detail}")


def guard_json(body: bytes) -> None:
    """Refuses a body too deeply nested to decode safely (before it is decoded)."""
    if json_depth_exceeds(body):
        raise ApiError(
            Code.MALFORMED_JSON,
            f"Malformed JSON body: nested deeper than {MAX_JSON_DEPTH} levels",
        )


class GuardedRequest(Request[Any, Any, Any]):
    """The app's request class: JSON bodies are guarded, then decoded as usual; a body that
    ends before it is complete is the client's error."""

    async def stream(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in super().stream():
                yield chunk
        except InternalServerException as error:
            # The server reports a body it could not read (a malformed chunked encoding,
            # e.g. a chunk size that is not hexadecimal; a connection closed mid-body) as
            # a disconnect: a client error, not ours.
            if error.detail != _DISCONNECTED:
                raise
            raise ApiError(Code.BAD_REQUEST, BODY_CUT_SHORT) from None

    async def json(self) -> Any:
        body = await self.body()
        guard_json(body)
        try:
            return await super().json()
        except SerializationException as error:
            raise malformed_json(body, str(error)) from None


class InputGuardMiddleware:
    """Refuses a NUL (or an unpaired surrogate) in the path or the query string. Query values
    are decoded with invalid UTF-8 replaced, so a NUL is all they can bring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            if not is_safe(scope["path"]):
                raise invalid(_unsafe_path_parameter(scope), _UNSAFE_TEXT, source="path")
            query: bytes = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                raise invalid(_nul_parameter(query), _UNSAFE_TEXT, source="query")
        await self.app(scope, receive, send)


def _nul_parameter(query: bytes) -> str:
    """The name of the first query parameter whose value (or name) holds a NUL."""
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value or "\x00" in key:
            return key if "\x00" not in key else "query"
    return "query"


def _unsafe_path_parameter(scope: Scope) -> str:
    """The route's path parameter that holds the bad text (routing ran before this layer)."""
    params: dict[str, Any] = scope.get("path_params") or {}
    name = next(
        (name for name, value in params.items() if isinstance(value, str) and not is_safe(value)),
        "path",
    )
    head, *rest = name.split("_")  # named as the API documents it: message_id -> messageId
    return head + "".join(part.capitalize() for part in rest)
