"""Password login, lock-out, the docs-session cookie and the docs guard."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.conftest import ADMIN_KEY, ADMIN_PASSWORD, admin_headers, create_user, db_rows, make_settings
from warest.asgi import create_litestar
from warest.config import Settings


def with_peer(app: Any, host: str) -> Any:
    """Serves ``app`` as if requests came from TCP peer ``host`` (the test client says "testclient")."""

    async def shim(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (host, 40000)}
        await app(scope, receive, send)

    return shim


async def login(client: AsyncTestClient[Any], username: str, password: str, **headers: str) -> Any:
    return await client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


async def test_login_sets_an_opaque_strict_httponly_cookie(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    response = await login(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result == {"username": "admin", "registry": "admin", "role": "admin", "isAdmin": True}
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("WAREST_DOCS_SESSION=")
    assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower()
    assert "Secure" not in set_cookie  # plain http in this test
    token = response.cookies["WAREST_DOCS_SESSION"]
    assert token and ADMIN_KEY not in set_cookie and token != ADMIN_KEY
    # Only a digest of the token is stored on the server.
    stored = await db_rows(settings, "SELECT token_digest FROM auth_sessions")
    assert len(stored) == 1 and stored[0]["token_digest"] != token


async def test_cookie_is_secure_over_https(settings: Settings) -> None:
    async with AsyncTestClient(app=create_litestar(settings), base_url="https://gw.example") as https:
        response = await login(https, "admin", ADMIN_PASSWORD)
        assert response.status_code == 200
        assert "Secure" in response.headers["set-cookie"]


async def test_wrong_password_and_unknown_user_look_the_same(client: AsyncTestClient[Any]) -> None:
    wrong = await login(client, "admin", "not-the-password")
    unknown = await login(client, "nobody", "not-the-password")
    refused(wrong, 401, 2200)
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers or "WAREST_DOCS_SESSION=;" in wrong.headers.get("set-cookie", "")


async def test_docs_need_a_key_or_the_cookie(client: AsyncTestClient[Any]) -> None:
    anonymous = await client.get("/docs/openapi.json")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 2200
    with_key = await client.get("/docs/openapi.json", headers=admin_headers())
    assert with_key.status_code == 200 and with_key.json()["info"]["title"] == "warest"
    assert (await login(client, "admin", ADMIN_PASSWORD)).status_code == 200
    with_cookie = await client.get("/docs/openapi.json")
    assert with_cookie.status_code == 200
    assert "/api/v1/session/create" in with_cookie.json()["paths"]
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/docs/code-table.json")).status_code == 200


async def test_cookie_is_not_an_api_key(client: AsyncTestClient[Any]) -> None:
    assert (await login(client, "admin", ADMIN_PASSWORD)).status_code == 200
    # The REST API accepts only API keys; the docs cookie alone is not enough.
    response = await client.get("/api/v1/users/me")
    refused(response, 401, 2200, message="X-WAREST-API-KEY")


async def test_logout_revokes_the_session_on_the_server(client: AsyncTestClient[Any]) -> None:
    response = await login(client, "admin", ADMIN_PASSWORD)
    token = response.cookies["WAREST_DOCS_SESSION"]
    assert (await client.get("/docs/openapi.json")).status_code == 200
    out = await client.post("/api/auth/logout")
    assert out.status_code == 200
    assert "WAREST_DOCS_SESSION=" in out.headers["set-cookie"]
    client.cookies.clear()
    # Replaying the old token (e.g. a stolen cookie) no longer works.
    client.cookies.set("WAREST_DOCS_SESSION", token)
    replay = await client.get("/docs/openapi.json")
    refused(replay, 401, 2200)


async def test_session_route_exchanges_a_key_for_a_cookie(client: AsyncTestClient[Any]) -> None:
    bad = await client.post("/api/auth/session", json={"apiKey": "wrst_nope"})
    refused(bad, 401, 2200)
    response = await client.post("/api/auth/session", headers=admin_headers())
    assert response.status_code == 200
    assert ADMIN_KEY not in response.headers["set-cookie"]
    assert (await client.get("/docs/openapi.json")).status_code == 200


async def test_lockout_grows_and_blocks_even_the_right_password(client: AsyncTestClient[Any]) -> None:
    for attempt in range(1, 5):
        response = await login(client, "admin", f"wrong-{attempt}")
        refused(response, 401, 2200)
    fifth = await login(client, "admin", "wrong-5")
    assert fifth.status_code == 429 and fifth.json()["code"] == 2400
    first_lock = int(fifth.headers["retry-after"])
    assert first_lock == 60 and fifth.json()["results"][0]["retryAfter"] == 60
    blocked = await login(client, "admin", ADMIN_PASSWORD)
    refused(blocked, 429, 2400)
    assert int(blocked.headers["retry-after"]) > 0
    assert "set-cookie" not in blocked.headers


async def test_lockout_back_off_grows(settings: Settings, database_url: str, tmp_path: Any) -> None:
    """After the lock expires, further failures lock for longer (doubling per 5 failures)."""
    app = create_litestar(settings)
    async with AsyncTestClient(app=app) as test_client:
        locks = []
        conn = await asyncpg.connect(
            settings.database_url, server_settings={"search_path": settings.database_schema}
        )
        try:
            for _ in range(15):
                response = await login(test_client, "admin", "wrong")
                if response.status_code == 429:
                    locks.append(int(response.headers["retry-after"]))
                    await conn.execute("UPDATE login_failures SET locked_until = now() - interval '1 second'")
        finally:
            await conn.close()
        assert locks[:3] == [60, 60, 60] and locks[-1] > 60
        assert sorted(locks) == locks


async def test_forwarded_for_from_untrusted_peer_does_not_bypass_the_lock(
    client: AsyncTestClient[Any],
) -> None:
    # WAREST_TRUSTED_PROXIES is empty here: nobody is trusted.
    for attempt in range(5):
        await login(client, "admin", f"wrong-{attempt}", **{"X-Forwarded-For": f"203.0.113.{attempt}"})
    spoofed = await login(client, "admin", ADMIN_PASSWORD, **{"X-Forwarded-For": "198.51.100.77"})
    refused(spoofed, 429, 2400)


async def test_forwarded_for_is_believed_from_a_trusted_proxy(
    database_url: str, schema: str, tmp_path: Any
) -> None:
    app = create_litestar(make_settings(database_url, schema, tmp_path, WAREST_TRUSTED_PROXIES="127.0.0.0/8"))
    async with AsyncTestClient(app=with_peer(app, "127.0.0.1")) as proxied:
        for attempt in range(5):
            await login(proxied, "admin", f"wrong-{attempt}", **{"X-Forwarded-For": "203.0.113.9"})
        same_client = await login(proxied, "admin", ADMIN_PASSWORD, **{"X-Forwarded-For": "203.0.113.9"})
        refused(same_client, 429, 2400)
        other_client = await login(proxied, "admin", ADMIN_PASSWORD, **{"X-Forwarded-For": "198.51.100.7"})
        assert other_client.status_code == 200


async def test_disabled_user_cannot_log_in(client: AsyncTestClient[Any]) -> None:
    await create_user(client, "judy", password="judy-password")
    assert (await login(client, "judy", "judy-password")).status_code == 200
    await client.post("/api/v1/users/judy/disable", headers=admin_headers())
    refused(await login(client, "judy", "judy-password"), 401, 2200)
