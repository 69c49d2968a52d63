"""The identity and security headers hook: appended on the usual path, replaced (never
duplicated) when a response already carries one of them."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from warest.api.middleware import API_CSP, LABEL_KEY, identity_headers
from warest.app.records import Principal


def principal() -> Any:
    return Principal(user_id=uuid4(), username="shop", registry="REG1", role="user")


async def run(headers: list[tuple[bytes, bytes]], scope: dict[str, Any]) -> dict[bytes, list[bytes]]:
    message: Any = {"type": "http.response.start", "status": 200, "headers": headers}
    await identity_headers("9.9.9")(message, scope)  # type: ignore[arg-type]
    found: dict[bytes, list[bytes]] = {}
    for name, value in message["headers"]:
        found.setdefault(name.lower(), []).append(value)
    assert scope["warest_status"] == 200
    return found


async def test_headers_are_added_to_a_response_that_has_none_of_them() -> None:
    scope: dict[str, Any] = {"path": "/api/v1/x", "user": principal(), LABEL_KEY: "Café"}
    found = await run([(b"content-type", b"application/json")], scope)
    assert found[b"x-frame-options"] == [b"DENY"]
    assert found[b"x-content-type-options"] == [b"nosniff"]
    assert found[b"content-security-policy"] == [API_CSP.encode()]
    assert found[b"x-warest-version"] == [b"9.9.9"]
    assert found[b"x-warest-registry"] == [b"REG1"] and found[b"x-warest-username"] == [b"shop"]
    assert found[b"x-warest-label"] == [b"Caf%C3%A9"]  # percent-encoded, never raw
    assert found[b"content-type"] == [b"application/json"]


async def test_a_header_already_set_is_replaced_not_duplicated() -> None:
    found = await run([(b"X-Frame-Options", b"SAMEORIGIN")], {"path": "/docs/"})
    assert found[b"x-frame-options"] == [b"DENY"]
    assert b"x-warest-registry" not in found  # no caller: no identity
    assert b"'self'" in found[b"content-security-policy"][0]  # the docs' policy
