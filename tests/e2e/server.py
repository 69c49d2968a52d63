"""A real warest server process for end-to-end tests (loopback only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbox_env(
    database_url: str, schema: str, data_dir: Path, admin_key: str, **extra: str
) -> dict[str, str]:
    """The environment of a sandbox server on a test schema."""
    return {
        "WAREST_DATABASE_URL": database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "WAREST_ENGINE": "sandbox",
        "WAREST_ADMIN_APIKEY": admin_key,
        "WAREST_DATA_DIR": str(data_dir),
        **extra,
    }


class ServerProcess:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
            **env,
        }
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / "server.log"

    def launch(self) -> subprocess.Popen[bytes]:
        """Starts ``warest serve`` without waiting for it (output appended to ``log``)."""
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "warest.cli", "serve"],
                env=self.env,
                cwd=self.cwd,
                stdout=handle,
                stderr=handle,
                start_new_session=True,
            )
        return self.proc

    def start(self, timeout: float = 90) -> None:
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.base}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop on SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL to the whole process group (as a container runtime does): no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-WAREST-API-KEY": key} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=20)
