"""Shared fixtures: a real PostgreSQL (one fresh schema per test) and the real app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from warest.asgi import create_litestar
from warest.config import Settings

DATABASE_URL = os.environ.get("WAREST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_KEY = "wrst_test-admin-key-0123456789abcdefghijklmnopqrstuv"
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="session")
def database_url() -> str:
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:  # fail, never skip: the suite needs PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {DATABASE_URL}: {error}")
    return DATABASE_URL


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def make_settings(database_url: str, schema: str, data_dir: Path, **overrides: str) -> Settings:
    environ = {
        "WAREST_DATABASE_URL": database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "WAREST_DATA_DIR": str(data_dir),
        "WAREST_AUTHADMIN_USERNAME": "admin",
        "WAREST_AUTHADMIN_PASSWORD": ADMIN_PASSWORD,
        "WAREST_ADMIN_APIKEY": ADMIN_KEY,
        "WAREST_SECRET_KEY": "test-pepper-" + "x" * 32,
        "WAREST_ENGINE": "sandbox",
        "LOG_LEVEL": "info",
        "WAREST_SEND_WAIT_MS": "3000",
        "WAREST_PROJECTOR": "inline",  # in-process apps; the e2e servers run a projector process
    }
    environ.update(overrides)
    return Settings.from_env(environ, dotenv=None)


@pytest.fixture
def settings(database_url: str, schema: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, schema, tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_litestar(settings)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1:7308") as test_client:
        yield test_client


def admin_headers() -> dict[str, str]:
    return {"X-WAREST-API-KEY": ADMIN_KEY}


async def create_user(client: AsyncTestClient[Any], username: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/users", json={"username": username, **body}, headers=admin_headers()
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def db_rows(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of ``query`` in the test's schema, read on a connection of their own
    (ground truth from the tables, beside what the API answers)."""
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": settings.database_schema}
    )
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
