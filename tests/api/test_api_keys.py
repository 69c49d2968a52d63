"""API keys: where they are accepted, how they are stored, what happens on rotation."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.refusals import refused
from tests.conftest import ADMIN_KEY, admin_headers, create_user, db_rows
from warest.config import Settings


async def test_key_accepted_in_header_and_bearer(client: AsyncTestClient[Any]) -> None:
    for headers in ({"X-WAREST-API-KEY": ADMIN_KEY}, {"Authorization": f"Bearer {ADMIN_KEY}"}):
        response = await client.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 200
        assert response.json()["results"][0]["username"] == "admin"


async def test_missing_key_is_401_envelope(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/v1/session/list")
    assert response.status_code == 401
    body = response.json()
    assert body == {"status": False, "code": 2200, "message": body["message"], "results": []}
    assert "X-WAREST-API-KEY" in body["message"]


async def test_key_in_query_string_is_refused_even_when_valid(client: AsyncTestClient[Any]) -> None:
    for name in ("api_key", "apikey", "apiKey"):
        response = await client.get(f"/api/v1/users/me?{name}={ADMIN_KEY}")
        refused(response, 401, 2200, message="query string")
    # ...also when a valid header key is present: the key must not travel in URLs at all.
    response = await client.get(f"/api/v1/users/me?api_key={ADMIN_KEY}", headers=admin_headers())
    refused(response, 401, 2200, message="query string")


async def test_other_key_headers_of_the_original_are_not_accepted(client: AsyncTestClient[Any]) -> None:
    for headers in (
        {"X-API-KEY": ADMIN_KEY},
        {"Api-Key": ADMIN_KEY},
        {"Authorization": f"Token {ADMIN_KEY}"},
        {"Authorization": f"APIKey {ADMIN_KEY}"},
    ):
        response = await client.get("/api/v1/users/me", headers=headers)
        refused(response, 401, 2200, message="X-WAREST-API-KEY")


async def test_keys_are_case_sensitive(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": ADMIN_KEY.upper()})
    refused(response, 401, 2200)


async def test_stored_digest_is_not_a_key(client: AsyncTestClient[Any], settings: Settings) -> None:
    user = await create_user(client, "carol")
    (row,) = await db_rows(settings, "SELECT api_key_digest FROM rm_users WHERE username = 'carol'")
    digest = row[0]
    assert digest and user["apiKey"] not in digest
    assert len(digest) == 64  # HMAC-SHA256 hex
    response = await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": digest})
    refused(response, 401, 2200)
    response = await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": user["apiKey"]})
    assert response.status_code == 200


async def test_generated_key_has_at_least_32_random_bytes(client: AsyncTestClient[Any]) -> None:
    keys = [(await create_user(client, f"user{i}"))["apiKey"] for i in range(3)]
    assert len(set(keys)) == 3
    for key in keys:
        assert key.startswith("wrst_")
        assert len(key) - len("wrst_") >= 43  # base64url of 32 bytes


async def test_key_is_shown_once_and_never_listed(client: AsyncTestClient[Any]) -> None:
    user = await create_user(client, "dave")
    response = await client.get("/api/v1/users", headers=admin_headers())
    text = response.text
    assert user["apiKey"] not in text
    assert "api_key_digest" not in text and "password_hash" not in text
    dave = next(u for u in response.json()["results"] if u["username"] == "dave")
    assert dave["hasApiKey"] is True and "apiKey" not in dave


async def test_rotation_kills_the_old_key(client: AsyncTestClient[Any]) -> None:
    user = await create_user(client, "erin")
    old = user["apiKey"]
    response = await client.post("/api/v1/users/erin/rotate-key", headers=admin_headers())
    assert response.status_code == 200
    new = response.json()["results"][0]["apiKey"]
    assert new != old
    refused(await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": old}), 401, 2200)
    me = await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": new})
    assert me.status_code == 200 and me.json()["results"][0]["username"] == "erin"


async def test_disabled_user_key_stops_working(client: AsyncTestClient[Any]) -> None:
    user = await create_user(client, "frank")
    headers = {"X-WAREST-API-KEY": user["apiKey"]}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    response = await client.post("/api/v1/users/frank/disable", headers=admin_headers())
    assert response.json()["results"][0]["disabled"] is True
    refused(await client.get("/api/v1/users/me", headers=headers), 401, 2200)
    await client.post("/api/v1/users/frank/enable", headers=admin_headers())
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200


async def test_user_management_is_admin_only(client: AsyncTestClient[Any]) -> None:
    user = await create_user(client, "gina")
    headers = {"X-WAREST-API-KEY": user["apiKey"]}
    for method, path in (
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users/gina/rotate-key"),
        ("POST", "/api/v1/users/admin/disable"),
        ("GET", "/api/v1/server/info"),
    ):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 403, path
        assert response.json()["code"] == 2201
    response = await client.post("/api/v1/users", json={"username": "mallory"}, headers=headers)
    refused(response, 403, 2201)


async def test_duplicate_username_and_registry_conflict(client: AsyncTestClient[Any]) -> None:
    await create_user(client, "henry", registry="HENRYREG")
    again = await client.post("/api/v1/users", json={"username": "HENRY"}, headers=admin_headers())
    assert again.status_code == 409 and again.json()["code"] == 2004
    clash = await client.post(
        "/api/v1/users", json={"username": "ivan", "registry": "HENRYREG"}, headers=admin_headers()
    )
    refused(clash, 409, 2004, message="HENRYREG")
    users = (await client.get("/api/v1/users", headers=admin_headers())).json()["results"]
    assert [u["username"] for u in users].count("henry") == 1
    assert "ivan" not in [u["username"] for u in users]
