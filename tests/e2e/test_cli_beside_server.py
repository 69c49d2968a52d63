"""The administrative commands run beside a live server never touch its sessions: they build
the admin container (no engine, no session runtime, no auto-start, no webhook dispatcher),
so a sandbox session the server holds open records no new event and stays ``open``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.server import ServerProcess, sandbox_env
from warest.domain import ids

ADMIN_KEY = "wrst_e2e-cli-beside-admin-key-0123456789abcdefghijkl"


def until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def server(database_url: str, schema: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = sandbox_env(
        database_url, schema, tmp_path / "data", ADMIN_KEY, WAREST_SECRET_KEY="e2e-pepper-" + "y" * 32
    )
    process = ServerProcess(env, tmp_path)
    process.start()
    yield process
    process.stop()


def warest(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m warest.cli ARGS`` with the server's configuration."""
    result = subprocess.run(
        [sys.executable, "-m", "warest.cli", *args],
        env=server.env,
        cwd=server.cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"warest {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def session_events(database_url: str, schema: str, stream: object) -> list[tuple[int, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT notification_id, topic FROM {schema}.warest_events"
            " WHERE originator_id = %s ORDER BY notification_id",
            (stream,),
        ).fetchall()
    return [(int(position), str(topic)) for position, topic in rows]


def session_topics_after(database_url: str, schema: str, position: int) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT topic FROM {schema}.warest_events WHERE notification_id > %s AND topic LIKE %s",
            (position, "%:Session.%"),
        ).fetchall()
    return [str(topic) for (topic,) in rows]


def test_admin_commands_beside_a_live_server_leave_its_sessions_alone(
    server: ServerProcess, database_url: str, schema: str, tmp_path: Path
) -> None:
    with server.client(ADMIN_KEY) as admin:
        created = admin.post("/api/v1/users", json={"username": "shopkeeper"})
        assert created.status_code == 201, created.text
        tenant = created.json()["results"][0]
    with server.client(tenant["apiKey"]) as client:
        assert client.post("/api/v1/session/create", json={"sessionId": "shop"}).status_code == 202
        scanned = client.post("/api/v1/sandbox/scan", json={"sessionId": "shop", "phone": "6281100000071"})
        assert scanned.status_code == 200, scanned.text

        def status() -> str:
            info = client.get("/api/v1/session/info", params={"sessionId": "shop"})
            assert info.status_code == 200, info.text
            return str(info.json()["results"][0]["status"])

        until(lambda: status() == "open", what="the session open")
        stream = ids.session_id(tenant["registry"], "shop")
        before = session_events(database_url, schema, stream)
        assert before and before[-1][1].endswith("Session.Opened"), before
        with psycopg.connect(database_url) as conn:
            row = conn.execute(f"SELECT max(notification_id) FROM {schema}.warest_events").fetchone()
        assert row is not None
        position = int(row[0])

        listed = warest(server, "users", "list")
        assert "shopkeeper" in listed.stdout
        made = warest(server, "users", "create", "cli-made")
        assert "created cli-made" in made.stdout and "API key (shown once): wrst_" in made.stdout
        rotated = warest(server, "users", "rotate-key", "cli-made")
        assert "API key (shown once): wrst_" in rotated.stdout
        new_key = rotated.stdout.rsplit("API key (shown once): ", 1)[1].strip()
        with server.client(new_key) as made_client:  # the server reads what the command wrote
            me = made_client.get("/api/v1/users/me")
        assert me.status_code == 200 and me.json()["results"][0]["username"] == "cli-made", me.text
        assert "disabled cli-made" in warest(server, "users", "disable", "cli-made").stdout
        assert "configuration OK" in warest(server, "config", "check").stdout
        exported = tmp_path / "events.ndjson"
        assert "exported" in warest(server, "events", "export", "--output", str(exported)).stderr
        assert "Session.Opened" in exported.read_text(encoding="utf-8")
        assert "rebuilt registry" in warest(server, "projections", "rebuild", "registry").stdout
        assert "registry: 0 applied" in warest(server, "projections", "retry-parked", "registry").stdout
        assert "0 migration(s) applied" in warest(server, "migrate").stdout

        # The commands did their work: the server sees the user they made, disabled.
        with server.client(ADMIN_KEY) as admin:
            users = admin.get("/api/v1/users").json()["results"]
        assert [u["disabled"] for u in users if u["username"] == "cli-made"] == [True], users

        # And recorded nothing about any session: the stream is as it was, still open.
        assert session_events(database_url, schema, stream) == before
        assert session_topics_after(database_url, schema, position) == []
        assert status() == "open"
        with httpx.Client(base_url=server.base, timeout=10) as anonymous:
            assert anonymous.get("/ready").status_code == 200
