"""The one response shape: ``{status, code, message, results}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Response

from warest.api.codes import HTTP_STATUS, Code


class Envelope(msgspec.Struct, kw_only=True):
    status: bool
    code: int
    message: str
    results: list[Any]


def envelope(
    code: Code,
    message: str,
    results: list[Any] | Any | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    cookies: list[Any] | None = None,
) -> Response[Envelope]:
    """A response whose HTTP status follows the code table; ``results`` is always a list."""
    if results is None:
        items: list[Any] = []
    elif isinstance(results, list):
        items = results
    else:
        items = [results]
    status_code = HTTP_STATUS[code]
    return Response(
        Envelope(status=200 <= status_code < 300, code=int(code), message=message, results=items),
        status_code=status_code,
        headers=dict(headers or {}),
        cookies=cookies,
    )
