"""Envelope for every outcome, identity and security headers, CORS, probes, logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_KEY, ADMIN_PASSWORD, admin_headers, create_user, make_settings
from warest.api.middleware import AccessLogMiddleware
from warest.asgi import create_litestar


def assert_envelope(body: dict[str, Any], status: bool, code: int) -> None:
    assert set(body) == {"status", "code", "message", "results"}
    assert body["status"] is status and body["code"] == code
    assert isinstance(body["message"], str) and isinstance(body["results"], list)


async def test_ping_is_public_and_enveloped(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/v1/server/ping")
    assert response.status_code == 200
    body = response.json()
    assert_envelope(body, True, 1000)
    assert body["message"] == "Server is alive" and body["results"][0]["ping"] == "pong"
    assert response.headers["x-warest-version"]
    assert "x-warest-registry" not in response.headers


async def test_probes(client: AsyncTestClient[Any]) -> None:
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["results"][0] == {
        "ready": True,
        "dependencies": {"database": True, "projections": True},
    }
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["results"][0]["status"] == "healthy"
    info = await client.get("/api/v1/server/info", headers=admin_headers())
    assert info.status_code == 200 and info.json()["results"][0]["serviceName"] == "Warest API"


async def test_identity_headers_on_authenticated_responses(client: AsyncTestClient[Any]) -> None:
    user = await create_user(client, "kate")
    headers = {"X-WAREST-API-KEY": user["apiKey"]}
    response = await client.get("/api/v1/session/list", headers=headers)
    assert response.headers["x-warest-registry"] == user["registry"]
    assert response.headers["x-warest-username"] == "kate"
    assert response.headers["x-warest-version"]
    assert "x-warest-label" not in response.headers
    created = await client.post(
        "/api/v1/session/create", json={"sessionId": "s", "label": "Shop"}, headers=headers
    )
    assert created.headers["x-warest-label"] == "Shop"
    # Error responses of authenticated requests carry them too.
    missing = await client.get("/api/v1/session/info?sessionId=nope", headers=headers)
    assert missing.status_code == 404 and missing.headers["x-warest-username"] == "kate"
    assert_envelope(missing.json(), False, 1101)


async def test_security_headers_everywhere(client: AsyncTestClient[Any]) -> None:
    for path in ("/api/v1/server/ping", "/api/v1/session/list", "/nope"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_errors_are_envelopes_with_field_and_reason(client: AsyncTestClient[Any]) -> None:
    missing = await client.post("/api/v1/users", json={}, headers=admin_headers())
    assert missing.status_code == 400
    assert_envelope(missing.json(), False, 2001)
    assert missing.json()["results"][0]["field"] == "username"

    wrong_type = await client.post("/api/v1/users", json={"username": 42}, headers=admin_headers())
    assert_envelope(wrong_type.json(), False, 2002)
    problem = wrong_type.json()["results"][0]
    assert problem["field"] == "username" and "str" in problem["reason"]

    bad_value = await client.post("/api/v1/users", json={"username": "x"}, headers=admin_headers())
    assert bad_value.status_code == 400
    assert_envelope(bad_value.json(), False, 2002)
    assert bad_value.json()["results"][0]["field"] == "username"

    unknown_field = await client.post(
        "/api/v1/users", json={"username": "okname", "admin": True}, headers=admin_headers()
    )
    assert unknown_field.status_code == 400 and unknown_field.json()["results"][0]["field"] == "admin"
    assert_envelope(unknown_field.json(), False, 2002)

    bad_role = await client.post(
        "/api/v1/users", json={"username": "okname", "role": "root"}, headers=admin_headers()
    )
    assert bad_role.status_code == 400 and bad_role.json()["results"][0]["field"] == "role"
    assert_envelope(bad_role.json(), False, 2002)

    malformed = await client.post(
        "/api/v1/users", content=b"{not json", headers={**admin_headers(), "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert_envelope(malformed.json(), False, 2008)

    not_found = await client.get("/api/v1/nothing-here", headers=admin_headers())
    assert not_found.status_code == 404
    assert_envelope(not_found.json(), False, 2600)

    wrong_method = await client.put("/api/v1/server/ping")
    assert wrong_method.status_code == 405
    assert_envelope(wrong_method.json(), False, 2010)

    too_big = await client.post(
        "/api/v1/users",
        content=b'{"username": "' + b"x" * (3 * 1024 * 1024) + b'"}',
        headers={**admin_headers(), "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert_envelope(too_big.json(), False, 2005)

    # Nothing was created by any of the bad requests.
    users = (await client.get("/api/v1/users", headers=admin_headers())).json()["results"]
    assert [u["username"] for u in users] == ["admin"]


async def test_unexpected_failure_is_a_500_envelope_without_details(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals: db password=hunter2")

    monkeypatch.setattr(services.sessions, "owned", broken)
    with caplog.at_level(logging.INFO):
        response = await client.get("/api/v1/session/list", headers=admin_headers())
    assert response.status_code == 500
    assert_envelope(response.json(), False, 8000)
    assert "hunter2" not in response.text
    assert response.json()["message"] == "Internal server error"


async def test_logs_never_contain_keys_passwords_or_bodies(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with AsyncTestClient(app=AccessLogMiddleware(create_litestar(settings))) as client:
            user = await create_user(client, "leak-check", password="very-secret-pass")
            login = {"username": "leak-check", "password": "very-secret-pass"}
            await client.post("/api/auth/login", json=login)
            await client.post("/api/auth/login", json={**login, "password": "wrong-secret-pass"})
            await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": user["apiKey"]})
            await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": "wrst_guess-key"})
            await client.get("/api/v1/users/me?api_key=wrst_query-key")
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert len([r for r in server_records if r.name == "warest.access"]) >= 6  # requests were logged...
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server_records)
    secrets = (
        user["apiKey"],
        ADMIN_KEY,
        ADMIN_PASSWORD,
        "very-secret-pass",
        "wrong-secret-pass",
        "wrst_guess-key",
        "wrst_query-key",
    )
    for secret in secrets:
        assert secret not in text  # ...but never with a key, a password or a body


async def test_cors_allows_configured_origins_only(database_url: str, schema: str, tmp_path: Any) -> None:
    settings = make_settings(database_url, schema, tmp_path, ALLOWED_ORIGINS="https://app.example.com")
    async with AsyncTestClient(app=create_litestar(settings)) as cors_client:
        preflight = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-WAREST-API-KEY",
        }
        good = await cors_client.options(
            "/api/v1/session/list", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert good.status_code in (200, 204)
        assert good.headers["access-control-allow-origin"] == "https://app.example.com"
        bad = await cors_client.options(
            "/api/v1/session/list", headers={"Origin": "https://evil.example", **preflight}
        )
        assert bad.status_code < 500
        assert bad.headers.get("access-control-allow-origin") != "https://evil.example"
        simple = await cors_client.get("/api/v1/server/ping", headers={"Origin": "https://evil.example"})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
        allowed = await cors_client.get("/api/v1/server/ping", headers={"Origin": "https://app.example.com"})
        exposed = allowed.headers["access-control-expose-headers"].lower()
        assert "x-warest-next-after" in exposed and "x-warest-registry" in exposed
