"""Asserting a refusal: the HTTP status and the envelope's code, field and message."""

from __future__ import annotations

from typing import Any

import httpx


def refused(
    response: httpx.Response,
    status: int,
    code: int,
    *,
    field: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """Asserts an error envelope (``status: false``) with this HTTP status and code; with
    ``field``, the field named by its first result; with ``message``, a part of its message.
    Returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] is False and body["code"] == code, body
    if field is not None:
        assert body["results"][0]["field"] == field, body
    if message is not None:
        assert message in body["message"], body
    return body
