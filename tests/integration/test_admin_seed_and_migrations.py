"""The admin seeded from configuration, and the migration runner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_KEY, make_settings
from warest.asgi import create_litestar
from warest.bootstrap import Container
from warest.infra.db.migrations import discover, migrate


async def me(client: AsyncTestClient[Any], key: str) -> Any:
    return await client.get("/api/v1/users/me", headers={"X-WAREST-API-KEY": key})


async def test_changing_admin_settings_updates_the_same_admin(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    """The original aborts boot when the admin username changes; we rename the admin."""
    first = make_settings(database_url, schema, tmp_path)
    async with AsyncTestClient(app=create_litestar(first)) as client:
        assert (await me(client, ADMIN_KEY)).json()["results"][0]["username"] == "admin"

    new_key = "wrst_rotated-admin-key-abcdefghijklmnopqrstuvwxyz0123"
    second = make_settings(
        database_url,
        schema,
        tmp_path,
        WAREST_AUTHADMIN_USERNAME="root",
        WAREST_AUTHADMIN_PASSWORD="new-admin-password",
        WAREST_ADMIN_APIKEY=new_key,
    )
    async with AsyncTestClient(app=create_litestar(second)) as client:
        assert (await me(client, ADMIN_KEY)).status_code == 401  # the old env key no longer works
        result = (await me(client, new_key)).json()["results"][0]
        assert result["username"] == "root" and result["registry"] == "admin" and result["isAdmin"] is True
        users = (await client.get("/api/v1/users", headers={"X-WAREST-API-KEY": new_key})).json()["results"]
        assert [u["username"] for u in users] == ["root"]
        old_password = await client.post(
            "/api/auth/login", json={"username": "root", "password": "admin-password-1"}
        )
        assert old_password.status_code == 401
        login = await client.post(
            "/api/auth/login", json={"username": "root", "password": "new-admin-password"}
        )
        assert login.status_code == 200
        # The freed username can be given to someone else.
        created = await client.post(
            "/api/v1/users", json={"username": "admin"}, headers={"X-WAREST-API-KEY": new_key}
        )
        assert created.status_code == 201


async def test_restart_with_same_settings_records_no_new_events(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, schema, tmp_path)
    async with AsyncTestClient(app=create_litestar(settings)):
        pass
    with psycopg.connect(database_url) as conn:
        count = conn.execute(f"SELECT count(*) FROM {schema}.warest_events").fetchone()
    async with AsyncTestClient(app=create_litestar(settings)):
        pass
    with psycopg.connect(database_url) as conn:
        again = conn.execute(f"SELECT count(*) FROM {schema}.warest_events").fetchone()
    assert count == again


def test_migrations_apply_once_and_are_recorded(database_url: str, schema: str) -> None:
    applied = migrate(database_url, schema)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert migrate(database_url, schema) == []
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT version, name, checksum FROM {schema}.schema_migrations ORDER BY version"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in discover()]
    assert all(len(r[2]) == 64 for r in rows)


def test_a_new_migration_file_is_applied_in_order(database_url: str, schema: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    assert [m.name for m in migrate(database_url, schema, directory)] == ["a"]
    (directory / "0002_b.sql").write_text("CREATE TABLE b (id int); INSERT INTO b VALUES (1);")
    assert [m.name for m in migrate(database_url, schema, directory)] == ["b"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.b").fetchone() == (1,)


def test_a_failing_migration_leaves_nothing_behind(database_url: str, schema: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_bad.sql").write_text("CREATE TABLE half (id int); SELECT * FROM missing_table;")
    try:
        migrate(database_url, schema, directory)
    except psycopg.Error:
        pass
    else:
        raise AssertionError("the bad migration should fail")
    with psycopg.connect(database_url) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'half'",
            (schema,),
        ).fetchone()
        recorded = conn.execute(f"SELECT count(*) FROM {schema}.schema_migrations").fetchone()
    assert exists == (0,) and recorded == (0,)


async def test_four_processes_starting_together_on_an_empty_database(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    """Tables and the admin are created once; every process comes up."""
    settings = make_settings(database_url, schema, tmp_path, WAREST_DATABASE_POOL_SIZE="2")
    containers = [Container(settings) for _ in range(4)]
    services = await asyncio.gather(*(c.start() for c in containers))
    try:
        users = await services[0].users.all()
        assert [u.username for u in users] == ["admin"]
        for service in services:
            assert (await service.users.authenticate_key(ADMIN_KEY)) is not None
    finally:
        await asyncio.gather(*(c.stop() for c in containers))
