"""Starting and stopping `warest serve` for real: SIGTERM after sandbox traffic stops the
server and its embedded PostgreSQL every time, SIGTERM during a start stuck on the projector
stops it too, a killed server leaves no PostgreSQL behind, a used port or an unreachable
database are reported at once, the ready line is printed, no zombie children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.e2e.server import ServerProcess, free_port, sandbox_env

ADMIN_KEY = "wrst_e2e-lifecycle-admin-key-0123456789abcdefghijklm"
EXIT_WAIT_S = 30


def until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "WAREST_DATA_DIR": str(data_dir),
        "WAREST_ENGINE": "sandbox",
        "WAREST_ADMIN_APIKEY": ADMIN_KEY,
        "WAREST_SEND_WAIT_MS": "300",
        **extra,
    }


def postgres_of(pgdata: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("name") == "postgres" and any(str(pgdata) in part for part in cmdline):
            found.append(process)
    return found


def family(pid: int) -> list[psutil.Process]:
    """The process and all its descendants."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def sigterm_and_wait(server: ServerProcess) -> int:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        tail = server.log.read_text()[-3000:]
        raise AssertionError(f"no exit {EXIT_WAIT_S}s after SIGTERM:\n{tail}") from None


def traffic(server: ServerProcess, round_: int) -> None:
    """Two tenants linked (scan, pair code), texts both ways, a logout fault."""
    clients = []
    with server.client(ADMIN_KEY) as admin:
        for name in ("a", "b"):
            created = admin.post("/api/v1/users", json={"username": f"t{round_}{name}"})
            assert created.status_code == 201, created.text
            clients.append(server.client(created.json()["results"][0]["apiKey"]))
    a, b = clients
    phone_a, phone_b = f"62811000{round_:02d}01", f"62811000{round_:02d}02"
    try:
        assert a.post("/api/v1/session/create", json={"sessionId": "shop"}).status_code == 202
        assert a.post("/api/v1/sandbox/scan", json={"sessionId": "shop", "phone": phone_a}).status_code == 200
        paired = b.get("/api/v1/session/create/pair-code", params={"sessionId": "desk", "phone": phone_b})
        code = paired.json()["results"][0]["pairCode"]
        assert b.post("/api/v1/sandbox/pair", json={"phone": phone_b, "code": code}).status_code == 200

        def open_(client: httpx.Client, session: str) -> bool:
            info = client.get(f"/api/v1/session/info?sessionId={session}").json()
            return bool(info["results"][0]["status"] == "open")

        until(lambda: open_(a, "shop") and open_(b, "desk"), what="both sessions open")
        for client, session, to in ((a, "shop", phone_b), (b, "desk", phone_a)):
            sent = client.post(
                "/api/v1/messages/send/text", json={"sessionId": session, "to": to, "message": "hello"}
            )
            assert sent.status_code in (200, 202), sent.text
        fault = b.post("/api/v1/sandbox/faults", json={"kind": "logout", "sessionId": "desk"})
        assert fault.status_code == 200, fault.text
        # A send in flight (the engine is slow) when the stop comes.
        slow = {"kind": "slow", "sessionId": "shop", "delayMs": 60000}
        assert a.post("/api/v1/sandbox/faults", json=slow).status_code == 200
        queued = a.post(
            "/api/v1/messages/send/text", json={"sessionId": "shop", "to": phone_b, "message": "in flight"}
        )
        assert queued.status_code == 202, queued.text
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("server_kind", "rounds"), [("granian", 5), ("uvicorn", 2)])
def test_sigterm_after_traffic_stops_server_and_embedded_postgres_every_time(
    tmp_path: Path, server_kind: str, rounds: int
) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"
    server = ServerProcess(embedded_env(data_dir, WAREST_SERVER=server_kind), tmp_path)
    for round_ in range(rounds):
        server.start()
        assert server.proc is not None
        processes = family(server.proc.pid)
        assert len(processes) >= 3, "serve, a worker and its projector"
        zombies = [p for p in processes if p.status() == psutil.STATUS_ZOMBIE]
        assert zombies == [], f"zombie children: {[(p.pid, p.name()) for p in zombies]}"
        postmasters = postgres_of(pgdata)
        assert postmasters, "the embedded PostgreSQL runs"
        traffic(server, round_)
        # A client still connected at the stop: an idle keep-alive connection and a request
        # whose headers never end.
        idle = server.client()
        assert idle.get("/healthz").status_code == 200
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        assert sigterm_and_wait(server) == 0, server.log.read_text()[-3000:]
        idle.close()
        stalled.close()
        until(lambda ps=processes: gone(ps), timeout=EXIT_WAIT_S, what=f"round {round_}: children gone")
        until(lambda: not postgres_of(pgdata), timeout=EXIT_WAIT_S, what=f"round {round_}: postgres stopped")
    lines = [line for line in server.log.read_text().splitlines() if line.startswith("warest listening on")]
    assert lines == [f"warest listening on {server.base}"] * rounds


@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "parent-only"])
def test_embedded_postgres_does_not_outlive_a_killed_server(tmp_path: Path, whole_group: bool) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"
    server = ServerProcess(embedded_env(data_dir), tmp_path)
    server.start()
    assert server.proc is not None and postgres_of(pgdata)
    processes = family(server.proc.pid)
    if whole_group:  # serve, its workers and projectors: no shutdown code runs anywhere
        os.killpg(server.proc.pid, signal.SIGKILL)
    else:  # `warest serve` alone: its workers notice and exit
        server.proc.kill()
    server.proc.wait()
    until(lambda: gone(processes), what="workers gone")
    until(lambda: not postgres_of(pgdata), what="embedded PostgreSQL stopped after its server was killed")

    # And it starts again, and a clean stop still stops PostgreSQL (no stale handle keeps it).
    server.start()
    with server.client() as client:
        assert client.get("/api/v1/server/ping").json()["results"][0]["ping"] == "pong"
    assert sigterm_and_wait(server) == 0
    until(lambda: not postgres_of(pgdata), what="embedded PostgreSQL stopped with the server")


def unprojected_events(env: dict[str, str], database_url: str, schema: str) -> None:
    """Events in the log that no projector has projected: a CLI run with no server seeds the
    admin (its own runner keeps only the registry; the other read models wait for a projector)."""
    subprocess.run(
        [sys.executable, "-m", "warest.cli", "users", "list"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
        check=False,
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.warest_events").fetchone()
    assert row is not None and row[0] > 0


@pytest.mark.parametrize("server_kind", ["granian", "uvicorn"])
def test_sigterm_while_start_waits_for_a_stuck_projector(
    database_url: str, schema: str, tmp_path: Path, server_kind: str
) -> None:
    env = sandbox_env(
        database_url, schema, tmp_path / "data", ADMIN_KEY, LOG_LEVEL="info", WAREST_SERVER=server_kind
    )
    unprojected_events(env, database_url, schema)
    server = ServerProcess({**env, "WAREST_PROJECTOR": "external", "LOG_LEVEL": "info"}, tmp_path)
    proc = server.launch()
    until(
        lambda: "waiting for the projector to catch up" in server.log.read_text() or proc.poll() is not None,
        timeout=90,
        what="start-up waiting for the projector",
    )
    assert proc.poll() is None, server.log.read_text()[-3000:]
    processes = family(proc.pid)
    assert sigterm_and_wait(server) == 0, server.log.read_text()[-3000:]
    until(lambda: gone(processes), what="every process of the server gone")
    assert "stop requested while starting" in server.log.read_text()


def test_a_start_without_projector_serves_unready_after_the_wait(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    env = sandbox_env(database_url, schema, tmp_path / "data", ADMIN_KEY)
    unprojected_events(env, database_url, schema)
    server = ServerProcess({**env, "WAREST_PROJECTOR": "external", "WAREST_STARTUP_WAIT_MS": "500"}, tmp_path)
    proc = server.launch()
    projector: subprocess.Popen[bytes] | None = None
    try:

        def answers() -> bool:
            assert proc.poll() is None, server.log.read_text()[-3000:]
            try:
                return httpx.get(f"{server.base}/ready", timeout=1).status_code > 0
            except httpx.HTTPError:
                return False

        until(answers, timeout=90, what="the server answers")
        ready = httpx.get(f"{server.base}/ready")
        assert ready.status_code == 503
        assert ready.json()["code"] == 8001
        assert ready.json()["results"][0]["dependencies"]["projections"] is False
        assert "the projector has not caught up" in server.log.read_text()

        projector = subprocess.Popen(
            [sys.executable, "-m", "warest.cli", "projector"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until(lambda: httpx.get(f"{server.base}/ready").status_code == 200, timeout=60, what="ready")
    finally:
        if projector is not None:
            projector.terminate()
            projector.wait(timeout=EXIT_WAIT_S)
        server.stop()


def test_a_second_server_on_a_used_port_fails_at_once(database_url: str, schema: str, tmp_path: Path) -> None:
    env = sandbox_env(database_url, schema, tmp_path / "data", ADMIN_KEY)
    first = ServerProcess(env, tmp_path)
    first.start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "warest.cli", "serve"],
            env={**first.env},
            capture_output=True,
            timeout=EXIT_WAIT_S,
            check=False,
        )
        assert second.returncode == 1
        assert f"cannot listen on {first.base}" in second.stderr.decode()
        assert "address already in use" in second.stderr.decode().lower()
        with first.client() as client:
            assert client.get("/api/v1/server/ping").status_code == 200
    finally:
        first.stop()


def test_an_unreachable_database_is_reported(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "WAREST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/warest",
        "WAREST_DATA_DIR": str(tmp_path / "data"),
        "PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "warest.cli", "serve"],
        env=env,
        capture_output=True,
        timeout=EXIT_WAIT_S,
        check=False,
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "cannot connect to the database (WAREST_DATABASE_URL)" in stderr
    assert "connection refused" in stderr.lower(), stderr


@pytest.mark.parametrize("server_kind", ["granian", "uvicorn"])
def test_slow_clients_are_timed_out(database_url: str, schema: str, tmp_path: Path, server_kind: str) -> None:
    env = sandbox_env(
        database_url,
        schema,
        tmp_path / "data",
        ADMIN_KEY,
        WAREST_SERVER=server_kind,
        WAREST_HEADER_TIMEOUT_MS="1000",
        WAREST_BODY_TIMEOUT_MS="1000",
    )
    server = ServerProcess(env, tmp_path)
    server.start()
    try:
        # Connections that never finish their headers are closed.
        half = []
        for _ in range(16):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=EXIT_WAIT_S)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            half.append(conn)
        for conn in half:
            with conn:
                answer = conn.recv(65536)
                assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer

        # A body shorter than its Content-Length gets an answer.
        with socket.create_connection(("127.0.0.1", server.port), timeout=EXIT_WAIT_S) as conn:
            conn.sendall(
                b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"X-WAREST-API-KEY: " + ADMIN_KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n"
                b'{"username"'
            )
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer
        assert b'"code":2000' in body and b"request body incomplete" in body

        # And the server still serves.
        with server.client() as client:
            assert client.get("/api/v1/server/ping").status_code == 200
    finally:
        server.stop()
