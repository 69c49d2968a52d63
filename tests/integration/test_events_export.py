"""``warest events export`` (a subprocess) writes the API's pages as NDJSON, and the
``streams`` read model rebuilds exactly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from tests.api.test_events_history import everything, registry_of, traffic
from tests.conftest import admin_headers
from warest.config import Settings


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "WAREST_DATABASE_URL": settings.database_url,
        "WAREST_DATABASE_SCHEMA": settings.database_schema,
        "WAREST_DATA_DIR": settings.data_dir,
        "PATH": "/usr/bin:/bin",
    }


async def warest(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "warest.cli", *args],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def export(settings: Settings, tmp_path: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    target = tmp_path / "export.ndjson"
    result = await warest(settings, "events", "export", "--output", str(target), *args)
    assert result.returncode == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()], result.stderr


async def test_export_equals_the_api_pages(
    client: AsyncTestClient[Any], settings: Settings, tmp_path: Path
) -> None:
    a, b = await traffic(client)
    registry_a = await registry_of(client, a)
    api_a = await everything(client, a)

    lines, stderr = await export(settings, tmp_path, "--registry", registry_a)
    assert lines == api_a
    assert f"exported {len(api_a)} events" in stderr and "100%" in stderr  # the progress bar ran

    filtered, _ = await export(
        settings, tmp_path, "--registry", registry_a, "--session", "main", "--type", "Message.*"
    )
    assert filtered == await everything(client, a, session="main", type="Message.*")
    pivot = api_a[len(api_a) // 2]
    after, _ = await export(
        settings,
        tmp_path,
        "--registry",
        registry_a,
        "--after",
        str(pivot["position"]),
        "--until",
        pivot["time"],
    )
    assert after == await everything(client, a, after=pivot["position"], to=pivot["time"])

    # Without --registry: every tenant, each line naming its registry.
    all_lines, _ = await export(settings, tmp_path)
    registries = {line["registry"] for line in all_lines}
    registry_b, registry_admin = await registry_of(client, b), await registry_of(client, admin_headers())
    assert registries == {registry_a, registry_b, registry_admin}
    for registry, headers in ((registry_a, a), (registry_b, b)):
        mine = [
            {k: v for k, v in line.items() if k != "registry"}
            for line in all_lines
            if line["registry"] == registry
        ]
        assert mine == await everything(client, headers)
    positions = [line["position"] for line in all_lines]
    assert positions == sorted(set(positions))
    assert not any(line["type"].startswith("Claim.") for line in all_lines)
    assert "password_hash" not in json.dumps(all_lines) and "api_key_digest" not in json.dumps(all_lines)


async def test_export_to_stdout_and_bad_options(client: AsyncTestClient[Any], settings: Settings) -> None:
    admin = await everything(client, admin_headers())
    result = await warest(
        settings, "events", "export", "--registry", await registry_of(client, admin_headers())
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == admin
    bad_type = await warest(settings, "events", "export", "--type", "Claim.Claimed")
    assert bad_type.returncode == 2 and "--type" in bad_type.stderr
    bad_time = await warest(settings, "events", "export", "--since", "last week")
    assert bad_time.returncode == 2 and "--since" in bad_time.stderr


def streams_dump(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        return conn.execute("SELECT * FROM rm_streams ORDER BY stream_id").fetchall()


async def test_streams_rebuild_reproduces_the_table_exactly(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    a, _ = await traffic(client)
    await client.delete("/api/v1/session/delete?sessionId=main", headers=a)  # re-created below:
    await client.post("/api/v1/session/create", json={"sessionId": "main"}, headers=a)  # same stream
    before = streams_dump(settings)
    kinds = sorted({row[3] for row in before})
    assert kinds == ["message", "session", "user"] and len(before) >= 9
    result = await warest(settings, "projections", "rebuild", "streams")
    assert result.returncode == 0 and "rebuilt streams" in result.stdout, result.stderr
    assert streams_dump(settings) == before
    assert await everything(client, a)  # the running server still answers from the rebuilt table
