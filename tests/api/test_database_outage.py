"""A database outage answers 503 (8001) with Retry-After on every route, reads and writes, and
the app works again once the database is back, with nothing lost.

The app reaches the shared PostgreSQL through a proxy of its own (``tests/dbproxy.py``): cut,
it drops the app's connections and refuses new ones, as a server that went down would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import admin_headers, create_user, db_rows, make_settings
from tests.dbproxy import DatabaseProxy
from warest.asgi import create_litestar
from warest.config import Settings
from warest.infra.db.outage import database_outage


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[DatabaseProxy]:
    proxy = DatabaseProxy(database_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


def assert_unavailable(response: Any, route: str) -> None:
    assert response.status_code == 503, (route, response.status_code, response.text)
    body = response.json()
    assert body["status"] is False and body["code"] == 8001, (route, body)
    assert body["message"] == "The database is unavailable; retry later"
    assert response.headers["retry-after"] == "5", route


async def test_an_outage_answers_503_with_retry_after_and_the_app_recovers_with_nothing_lost(
    proxy: DatabaseProxy, settings: Settings, tmp_path: Path
) -> None:
    proxied = make_settings(proxy.url, settings.database_schema, tmp_path)
    async with AsyncTestClient(app=create_litestar(proxied), base_url="http://127.0.0.1:7308") as client:
        alice = {"X-WAREST-API-KEY": (await create_user(client, "alice"))["apiKey"]}
        created = await client.post("/api/v1/session/create", json={"sessionId": "shop"}, headers=alice)
        assert created.status_code == 202, created.text
        configured = await client.post("/api/v1/session/shop/config", json={"label": "Shop"}, headers=alice)
        assert configured.status_code == 200, configured.text
        assert (await client.get("/api/v1/users", headers=admin_headers())).status_code == 200

        proxy.cut()
        during = [
            ("GET", "/api/v1/users/me", alice, None),
            ("GET", "/api/v1/session/list", alice, None),
            ("GET", "/api/v1/session/info?sessionId=shop", alice, None),
            ("GET", "/api/v1/chats?sessionId=shop", alice, None),
            ("POST", "/api/v1/session/create", alice, {"sessionId": "till"}),
            ("POST", "/api/v1/session/shop/config", alice, {"label": "Closed"}),
            ("POST", "/api/v1/users", admin_headers(), {"username": "bob"}),  # loads from the event store
            ("GET", "/api/v1/users", admin_headers(), None),
            ("GET", "/api/v1/session/list", {"X-WAREST-API-KEY": "wrst_" + "k" * 43}, None),  # authentication
        ]
        for method, path, headers, body in during:
            response = await client.request(method, path, headers=headers, json=body)
            assert_unavailable(response, f"{method} {path}")

        proxy.restore()
        bob = await client.post("/api/v1/users", json={"username": "bob"}, headers=admin_headers())
        assert bob.status_code == 201 and bob.json()["code"] == 1001, bob.text  # the 503 wrote nothing
        till = await client.post("/api/v1/session/create", json={"sessionId": "till"}, headers=alice)
        assert till.status_code == 202, till.text
        info = await client.get("/api/v1/session/info?sessionId=shop", headers=alice)
        assert info.status_code == 200 and info.json()["results"][0]["label"] == "Shop"
        listed = await client.get("/api/v1/session/list", headers=alice)
        assert sorted(s["sessionId"] for s in listed.json()["results"][0]["items"]) == ["shop", "till"]
        users = await client.get("/api/v1/users", headers=admin_headers())
        assert sorted(u["username"] for u in users.json()["results"]) == ["admin", "alice", "bob"]

    sessions = await db_rows(settings, "SELECT session_id, label FROM rm_sessions ORDER BY session_id")
    assert [(row["session_id"], row["label"]) for row in sessions] == [("shop", "Shop"), ("till", "till")]


async def test_errors_of_a_terminated_or_closed_connection_are_outages(database_url: str) -> None:
    """Real failures: the server ends the connection (as in a restart), and a closed connection
    is used; a bad query is no outage."""
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError) as bad_query:
            await conn.fetch("SELECT * FROM no_such_table_here")
        assert not database_outage(bad_query.value)
        with pytest.raises(Exception) as terminated:  # which class is the question
            await conn.fetch("SELECT pg_terminate_backend(pg_backend_pid())")
        assert database_outage(terminated.value), repr(terminated.value)
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InterfaceError) as closed:
        await conn.fetch("SELECT 1")
    assert database_outage(closed.value)
