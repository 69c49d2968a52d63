"""`warest serve` with no database configured: embedded PostgreSQL from an empty data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ADMIN_KEY = "wrst_e2e-admin-key-0123456789abcdefghijklmnopqrstuv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "WAREST_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "WAREST_ADMIN_APIKEY": ADMIN_KEY,
        "WAREST_ENGINE": "sandbox",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "warest.cli", "serve"],
        env=env,
        cwd=data_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"server exited early:\n{output}")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("server did not stop on SIGTERM") from None


def postgres_running(pgdata: Path) -> bool:
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("name") == "postgres" and any(str(pgdata) in part for part in cmdline):
            return True
    return False


def test_serve_boots_embedded_postgres_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert not data_dir.exists()
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    proc = start(data_dir, port)
    try:
        wait_ready(base, proc)
        ping = httpx.get(f"{base}/api/v1/server/ping").json()
        assert ping["status"] is True and ping["code"] == 1000 and ping["results"][0]["ping"] == "pong"
        created = httpx.post(
            f"{base}/api/v1/users", json={"username": "persisted"}, headers={"X-WAREST-API-KEY": ADMIN_KEY}
        )
        assert created.status_code == 201
        user_key = created.json()["results"][0]["apiKey"]
    finally:
        stop(proc)
    pgdata = data_dir / "postgres"
    assert (pgdata / "PG_VERSION").exists()
    assert (data_dir / "secret.key").exists()
    assert oct((data_dir / "secret.key").stat().st_mode & 0o777) == "0o600"
    deadline = time.monotonic() + 15
    while postgres_running(pgdata) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not postgres_running(pgdata), "embedded PostgreSQL outlived the server"

    proc = start(data_dir, port)
    try:
        wait_ready(base, proc)
        me = httpx.get(f"{base}/api/v1/users/me", headers={"X-WAREST-API-KEY": user_key})
        assert me.status_code == 200 and me.json()["results"][0]["username"] == "persisted"
    finally:
        stop(proc)
