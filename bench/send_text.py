"""Send-text throughput of a real ``warest serve`` process on the sandbox engine.

The script starts ``warest serve`` (one process) on a free loopback port, in a fresh
PostgreSQL schema ``bench_<random>``, creates a tenant, logs a sandbox session in by QR
scan and creates an external recipient account. After a warm-up it runs ``--clients``
asyncio tasks (64 by default) that each loop ``POST /api/v1/messages/send/text`` for
``--seconds``, and in the same window ONE extra task that loops ``GET /api/v1/server/ping``
(it shares the server with the sends). It prints accepted sends/s, latency percentiles,
errors by status, ping req/s, the CPU time used by the server, the bench client and
PostgreSQL, and then checks durability: the ``Message.Queued`` and ``Message.Sent``
events in ``<schema>.warest_events`` must both equal the accepted sends (HTTP 200 with
every recipient ``sent``/``server``/``delivered``/``read``), warm-up included. A mismatch
is printed and the exit status is 1. The server is stopped with SIGTERM and the schema
dropped at the end.

    .venv/bin/python bench/send_text.py [--seconds 10] [--clients 64] [--client httpx|httpx-per-task|raw]
        [--server granian|uvicorn] [--window-ms 2] [--pool-size 8] [--queue-concurrency 1]
        [--ping-tasks 1] [--set NAME=VALUE ...] [--py-spy FILE [--py-spy-mode gil|cpu|wall]]

The default client is one ``httpx.AsyncClient`` with a pool of ``--clients`` +
``--ping-tasks`` connections. On a small machine it is slower than the server (see
docs/performance.md): ``--client raw`` measures the server instead of httpx.

The database URL comes from ``--database-url``, else ``WAREST_BENCH_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``. Only loopback servers are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import psutil
import psycopg
from psycopg import sql

import projections
from warest.config import Settings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ACCEPTED_STATUSES = frozenset({"sent", "server", "delivered", "read"})
SESSION = "bench"
SESSION_PHONE = "6281000000001"
RECIPIENT_PHONE = "6281000000002"
SEND_PATH = "/api/v1/messages/send/text"
PING_PATH = "/api/v1/server/ping"
QUEUED_SUFFIX = "Message.Queued"
SENT_SUFFIX = "Message.Sent"
RECEIPT_SUFFIX = "Message.StatusChanged"
TARGET_SENDS_PER_S = 2500.0
TARGET_P99_MS = 40.0
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Knobs passed to the server, with the name of the command-line option that sets them.
KNOBS = {
    "WAREST_SERVER": "--server",
    "WAREST_GROUP_COMMIT": "--group-commit",
    "WAREST_GROUP_COMMIT_WINDOW_MS": "--window-ms",
    "WAREST_DATABASE_POOL_SIZE": "--pool-size",
    "WAREST_QUEUE_CONCURRENCY": "--queue-concurrency",
}
# Settings shown in the header (effective value: ours, else the server's default).
SHOWN = (
    "WAREST_SERVER",
    "WAREST_WORKERS",
    "WAREST_GROUP_COMMIT",
    "WAREST_GROUP_COMMIT_WINDOW_MS",
    "WAREST_DATABASE_POOL_SIZE",
    "WAREST_QUEUE_CONCURRENCY",
    "WAREST_QUEUE_MAX_SIZE",
    "WAREST_SEND_WAIT_MS",
    "LOG_LEVEL",
)


PY_SPY_MODES = {"gil": ("--gil",), "cpu": (), "wall": ("--idle",)}


class BenchError(Exception):
    """The setup or the server failed: the run cannot produce figures."""


# -- results -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests of one kind: latency of every answer, accepted answers, failures by kind.

    ``in_window`` counts the accepted answers that arrived before ``deadline``: rates are
    computed from them, so the requests still in flight at the deadline do not stretch
    the window. Latencies and the durability check include every answer.
    """

    deadline: float = float("inf")
    latencies_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    in_window: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def record(self, started: float, failure: str | None) -> None:
        now = time.perf_counter()
        self.latencies_ms.append((now - started) * 1000)
        if failure is not None:
            self.failures[failure] += 1
            return
        self.accepted += 1
        if now <= self.deadline:
            self.in_window += 1

    def percentile(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        index = min(len(data) - 1, max(0, round(p / 100 * len(data)) - 1))
        return data[index]


@dataclass
class CpuTimes:
    """CPU seconds (user + system) of the server tree, this client and PostgreSQL."""

    server: float = 0.0
    client: float = 0.0
    postgres: float = 0.0


# -- database ---------------------------------------------------------------------------------


def is_loopback(database_url: str) -> bool:
    url = urlparse(database_url)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    if host.startswith("/") or host == "localhost":  # a Unix socket, or the local name
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin(database_url: str, statement: sql.SQL | sql.Composed, params: tuple[Any, ...] = ()) -> list[Any]:
    """Runs one statement on its own autocommit connection; returns its rows, if any."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def count_message_events(database_url: str, schema: str) -> tuple[int, int, int]:
    """(Queued, Sent, StatusChanged) events of the Message aggregate in ``<schema>.warest_events``."""
    rows = admin(
        database_url,
        sql.SQL(
            "SELECT count(*) FILTER (WHERE topic LIKE %s), count(*) FILTER (WHERE topic LIKE %s),"
            " count(*) FILTER (WHERE topic LIKE %s) FROM {}.{}"
        ).format(sql.Identifier(schema), sql.Identifier("warest_events")),
        (f"%{QUEUED_SUFFIX}", f"%{SENT_SUFFIX}", f"%{RECEIPT_SUFFIX}"),
    )
    return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])


def drop_schema(database_url: str, schema: str) -> None:
    admin(database_url, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def postgres_cpu_seconds() -> float:
    """CPU seconds of every local ``postgres`` process that still exists (a best effort)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info.get("name") == "postgres" and process.info.get("cpu_times") is not None:
            times = process.info["cpu_times"]
            total += times.user + times.system
    return total


def code_fingerprint() -> str:
    """sha256 of the server's code (src/, projections/, migrations/): which version was measured."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    files = sorted(
        path
        for folder in ("src", "projections", "migrations")
        for path in (root / folder).rglob("*")
        if path.is_file() and path.suffix in {".py", ".sql"}
    )
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    names = ", ".join(projection.name for projection in projections.ALL)
    return f"code sha256 {digest.hexdigest()[:12]} ({len(files)} files), projections: {names}"


# -- the server process -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    env: dict[str, str]

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def log_tail(self, lines: int = 8, width: int = 400) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line[:width] for line in text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM, wait; then kill whatever is left of the tree. Returns the exit code."""
        tree = self.tree()  # the workers too, taken before the main process can exit
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"server still running {STOP_TIMEOUT_S:.0f} s after SIGTERM: killed", file=sys.stderr)
        kill_tree(self.process, tree)
        return self.process.returncode


def kill_tree(process: subprocess.Popen[bytes], tree: list[psutil.Process]) -> None:
    """Kills the server and its workers if they are still running (the same processes, by pid)."""
    for member in reversed(tree):
        with contextlib.suppress(psutil.Error):
            if member.is_running():  # psutil also checks the creation time: never a reused pid
                member.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def server_env(args: argparse.Namespace, schema: str, data_dir: Path, port: int) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "WAREST_DATABASE_URL": args.database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "WAREST_ENGINE": "sandbox",
        "WAREST_ADMIN_APIKEY": "wrst_" + secrets.token_hex(24),
        "WAREST_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
    }
    for name, option in KNOBS.items():
        value = getattr(args, option.removeprefix("--").replace("-", "_"))
        if value is not None:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    for item in args.set:
        name, _, value = item.partition("=")
        env[name.strip()] = value
    return env


def start_server(args: argparse.Namespace, schema: str, data_dir: Path) -> Server:
    port = free_port()
    env = server_env(args, schema, data_dir, port)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # the executable is the virtualenv's own warest
            [str(Path(sys.executable).with_name("warest")), "serve"],
            env=env,
            cwd=data_dir,  # no stray .env is read
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", log_path, env)


def effective_settings(env: dict[str, str]) -> str:
    """The server settings that matter here, as the server will read them."""
    settings = Settings.from_env(environ=env, dotenv=None)
    shown = dict((name, value) for name, value, _ in settings.described())
    return ", ".join(f"{name}={shown[name]}" for name in SHOWN)


async def wait_ready(client: httpx.AsyncClient, server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"the server exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/ready", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise BenchError(f"the server was not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


# -- the scenario -------------------------------------------------------------------------------


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{what}: HTTP {response.status_code}, expected {status}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


async def prepare(client: httpx.AsyncClient, admin_key: str) -> dict[str, str]:
    """Tenant, open sandbox session, recipient account; returns the tenant's headers."""
    created = expect(
        await client.post(
            "/api/v1/users", json={"username": "bench"}, headers={"X-WAREST-API-KEY": admin_key}
        ),
        201,
        "create the tenant",
    )
    headers = {"X-WAREST-API-KEY": created["results"][0]["apiKey"]}
    login = expect(
        await client.post(
            "/api/v1/session/create", json={"sessionId": SESSION, "engine": "sandbox"}, headers=headers
        ),
        202,
        "create the session",
    )
    if not login["results"][0].get("qrString"):
        raise BenchError(f"create the session: no qrString in {login}")
    expect(
        await client.post(
            "/api/v1/sandbox/scan", json={"sessionId": SESSION, "phone": SESSION_PHONE}, headers=headers
        ),
        200,
        "scan the QR",
    )
    deadline = time.monotonic() + 20
    status = None
    while status != "open":
        if time.monotonic() > deadline:
            raise BenchError(f"the session is still '{status}' 20 s after the scan")
        await asyncio.sleep(0.05)
        info = expect(
            await client.get("/api/v1/session/info", params={"sessionId": SESSION}, headers=headers),
            200,
            "session info",
        )
        status = info["results"][0]["status"]
    expect(
        await client.post("/api/v1/sandbox/accounts", json={"phone": RECIPIENT_PHONE}, headers=headers),
        201,
        "create the recipient account",
    )
    return headers


class Lane:
    """One client task's way to the server: ``request()`` returns (status, body)."""

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Releases what the lane owns."""


class HttpxLane(Lane):
    """httpx: every lane shares one client (``httpx``) or owns one (``httpx-per-task``)."""

    def __init__(self, client: httpx.AsyncClient, owned: bool) -> None:
        self.client = client
        self.owned = owned

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        response = await self.client.request(method, path, content=body, headers=headers)
        return response.status_code, response.content

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()


class RawLane(Lane):
    """A minimal HTTP/1.1 keep-alive client on one asyncio connection (loopback only).

    It exists because httpx's own cost per request (~1 ms of CPU, and far more with a
    shared pool of 64 connections) is of the same order as the server's on 2 vCPUs.
    """

    def __init__(self, port: int, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(method, path, body, headers or {})
        except BaseException:
            await self.aclose()  # the connection state is unknown: start over next time
            raise

    async def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await self.reader.readexactly(size + 2))
            await self.reader.readuntil(b"\r\n")
            content = b"".join(chunk[:-2] for chunk in chunks)
        else:
            content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            await self.aclose()
        return status, content

    async def aclose(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


CLIENT_ERRORS = (
    httpx.HTTPError,
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
)


def make_lanes(kind: str, base_url: str, count: int, timeout_s: float) -> list[Lane]:
    if kind == "raw":
        port = int(urlparse(base_url).port or 80)
        return [RawLane(port, timeout_s) for _ in range(count)]
    timeout = httpx.Timeout(timeout_s)
    if kind == "httpx-per-task":
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return [
            HttpxLane(
                httpx.AsyncClient(
                    base_url=base_url, http2=False, limits=one, timeout=timeout, trust_env=False
                ),
                owned=True,
            )
            for _ in range(count)
        ]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    shared = httpx.AsyncClient(
        base_url=base_url, http2=False, limits=limits, timeout=timeout, trust_env=False
    )
    return [HttpxLane(shared, owned=index == 0) for index in range(count)]


def send_outcome(status: int, content: bytes) -> str | None:
    """None when the send is accepted; otherwise a label for the failure table."""
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status} (not JSON)"
    code = body.get("code") if isinstance(body, dict) else None
    if status != 200:
        return f"{status} code {code}"
    results = body.get("results") or []
    statuses = [r.get("status") for r in results if isinstance(r, dict)]
    if statuses and all(s in ACCEPTED_STATUSES for s in statuses):
        return None
    return f"200 code {code} recipient status {','.join(map(str, statuses)) or 'none'}"


class Sender:
    """Numbers the messages and records every send attempt (warm-up or timed)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.counter = 0

    async def send(self, lane: Lane, tally: Tally) -> None:
        self.counter += 1
        body = json.dumps({"sessionId": SESSION, "to": RECIPIENT_PHONE, "message": f"bench {self.counter}"})
        started = time.perf_counter()
        try:
            status, content = await lane.request("POST", SEND_PATH, body.encode(), self.headers)
            failure = send_outcome(status, content)
        except CLIENT_ERRORS as error:
            failure = f"client {type(error).__name__}"
        tally.record(started, failure)

    async def loop(self, lane: Lane, deadline: float, tally: Tally) -> None:
        while time.perf_counter() < deadline:
            await self.send(lane, tally)


async def warm_up(sender: Sender, lanes: list[Lane], count: int, tally: Tally) -> None:
    remaining = [count]

    async def worker(lane: Lane) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            await sender.send(lane, tally)

    await asyncio.gather(*(worker(lane) for lane in lanes[:count]))


async def ping_loop(lane: Lane, deadline: float, tally: Tally) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            status, _ = await lane.request("GET", PING_PATH)
            failure = None if status == 200 else f"{status}"
        except CLIENT_ERRORS as error:
            failure = f"client {type(error).__name__}"
        tally.record(started, failure)


@dataclass
class Report:
    nproc: int
    settings: str
    warmup: Tally
    sends: Tally
    ping: Tally
    window_s: float
    elapsed_s: float  # the window, plus the requests still in flight at its end
    cpu: CpuTimes
    queued_events: int = -1
    sent_events: int = -1
    receipt_events: int = -1
    server_exit: int | None = None


async def run(args: argparse.Namespace, schema: str, data_dir: Path, servers: list[Server]) -> Report:
    server = start_server(args, schema, data_dir)
    servers.append(server)
    settings = effective_settings(server.env)
    print(f"server: pid {server.process.pid}, {server.base_url}, schema {schema}")
    print(f"server settings: {settings}")
    async with httpx.AsyncClient(
        base_url=server.base_url, http2=False, timeout=httpx.Timeout(args.request_timeout), trust_env=False
    ) as setup:
        await wait_ready(setup, server)
        headers = await prepare(setup, server.env["WAREST_ADMIN_APIKEY"])

    # One lane per send task, and one per ping task.
    lanes = make_lanes(args.client, server.base_url, args.clients + args.ping_tasks, args.request_timeout)
    try:
        sender = Sender(headers)
        warmup = Tally()
        await warm_up(sender, lanes[: args.clients], args.warmup, warmup)
        if warmup.accepted == 0:
            raise BenchError(f"no warm-up send was accepted: {dict(warmup.failures)}\n{server.log_tail()}")

        profiler = start_profiler(args, server)
        cpu_before = (server.cpu_seconds(), time.process_time(), postgres_cpu_seconds())
        started = time.perf_counter()
        deadline = started + args.seconds
        sends, ping = Tally(deadline), Tally(deadline)
        async with asyncio.timeout(args.seconds + args.request_timeout + 30):
            await asyncio.gather(
                *(sender.loop(lane, deadline, sends) for lane in lanes[: args.clients]),
                *(ping_loop(lane, deadline, ping) for lane in lanes[args.clients :]),
            )
        elapsed = time.perf_counter() - started
        cpu = CpuTimes(
            server=server.cpu_seconds() - cpu_before[0],
            client=time.process_time() - cpu_before[1],
            postgres=postgres_cpu_seconds() - cpu_before[2],
        )
        finish_profiler(profiler)
    finally:
        for lane in lanes:
            await lane.aclose()

    report = Report(len(os.sched_getaffinity(0)), settings, warmup, sends, ping, args.seconds, elapsed, cpu)
    report.server_exit = await asyncio.to_thread(server.stop)
    report.queued_events, report.sent_events, report.receipt_events = await asyncio.to_thread(
        count_message_events, args.database_url, schema
    )
    return report


def start_profiler(args: argparse.Namespace, server: Server) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the server tree during the timed phase (collapsed stacks)."""
    if not args.py_spy:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [
        py_spy,
        "record",
        "--pid",
        str(server.process.pid),
        "--subprocesses",
        "--threads",
        "--nonblocking",
        "--rate",
        str(args.py_spy_rate),
        "--duration",
        str(max(1, round(args.seconds))),
        *PY_SPY_MODES[args.py_spy_mode],
        "--format",
        "raw",
        "--output",
        str(Path(args.py_spy).resolve()),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is None:
        return
    try:
        _, err = profiler.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        _, err = profiler.communicate()
    if profiler.returncode != 0:
        detail = err.decode(errors="replace")[-500:]
        print(f"py-spy failed ({profiler.returncode}): {detail}", file=sys.stderr)


# -- output ---------------------------------------------------------------------------------------


def print_report(report: Report) -> bool:
    """Prints the figures; returns whether the durability check passed."""
    sends, ping = report.sends, report.ping
    rate = sends.in_window / report.window_s
    ping_rate = ping.in_window / report.window_s
    print()
    print(
        f"sends accepted   {sends.accepted} of {sends.requests} ({sends.in_window} within the "
        f"{report.window_s:g} s window, the last answer at {report.elapsed_s:.2f} s); "
        f"warm-up {report.warmup.accepted} of {report.warmup.requests}"
    )
    print(f"sends/s          {rate:.0f}")
    print(
        f"latency ms       p50 {sends.percentile(50):.1f}  p90 {sends.percentile(90):.1f}  "
        f"p99 {sends.percentile(99):.1f}  max {sends.percentile(100):.1f}"
    )
    errors = sends.failures + report.warmup.failures
    print(f"errors           {', '.join(f'{k}: {v}' for k, v in sorted(errors.items())) or 'none'}")
    if ping.requests:
        print(
            f"ping             {ping_rate:.0f} req/s, p50 {ping.percentile(50):.1f} ms, "
            f"p99 {ping.percentile(99):.1f} ms" + (f", errors {dict(ping.failures)}" if ping.failures else "")
        )
    else:
        print("ping             not measured (--ping-tasks 0)")
    cpu = report.cpu
    wall = report.elapsed_s / 100
    print(
        f"cpu              server {cpu.server / wall:.0f}%, bench client {cpu.client / wall:.0f}%, "
        f"postgres {cpu.postgres / wall:.0f}% (100% = one CPU; {report.nproc} CPUs)"
    )
    if sends.accepted:
        # Steadier than sends/s from run to run: what each send costs, whatever the machine's load.
        per_send = 1000 / sends.accepted
        print(
            f"cpu per send     server {cpu.server * per_send:.3f} ms + postgres "
            f"{cpu.postgres * per_send:.3f} ms = {(cpu.server + cpu.postgres) * per_send:.3f} ms"
        )
    if report.server_exit not in (0, None):
        print(f"server exit      {report.server_exit}")
    expected = report.warmup.accepted + sends.accepted
    durable = report.queued_events == expected and report.sent_events == expected
    print(
        f"durability       {'ok' if durable else 'MISMATCH'}: {expected} accepted sends (warm-up included), "
        f"{report.queued_events} Message.Queued and {report.sent_events} Message.Sent events"
    )
    print(
        f"receipts         {'ok' if report.receipt_events == 2 * expected else 'BEHIND'}: "
        f"{report.receipt_events} Message.StatusChanged events by the server's stop"
        f" ({2 * expected} expected: server and delivered for each send)"
    )
    met = rate >= TARGET_SENDS_PER_S and sends.percentile(99) <= TARGET_P99_MS
    print(
        f"target           >= {TARGET_SENDS_PER_S:.0f} sends/s with p99 <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if met else 'NOT met'}"
    )
    return durable


def watchdog(limit_s: float, servers: list[Server], cleanup: Any) -> None:
    """The bench must end by itself, even if the event loop is stuck in a blocking call."""

    def expire() -> None:
        print(f"send_text.py: no result after {limit_s:.0f} s, giving up", file=sys.stderr, flush=True)
        for server in servers:
            kill_tree(server.process, server.tree())
        with contextlib.suppress(Exception):
            cleanup()
        os._exit(3)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed phase (default 10)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent send tasks (default 64)")
    parser.add_argument(
        "--ping-tasks", type=int, default=1, help="tasks looping GET /api/v1/server/ping (default 1)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed sends first (default 200)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WAREST_BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL on loopback (default: $WAREST_BENCH_DATABASE_URL or %(default)s)",
    )
    knobs = parser.add_argument_group("server settings (default: the server's own default)")
    knobs.add_argument("--server", choices=("granian", "uvicorn"), help="WAREST_SERVER")
    knobs.add_argument("--window-ms", type=int, help="WAREST_GROUP_COMMIT_WINDOW_MS")
    knobs.add_argument(
        "--group-commit", action=argparse.BooleanOptionalAction, default=None, help="WAREST_GROUP_COMMIT"
    )
    knobs.add_argument("--pool-size", type=int, help="WAREST_DATABASE_POOL_SIZE")
    knobs.add_argument("--queue-concurrency", type=int, help="WAREST_QUEUE_CONCURRENCY")
    knobs.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="any other server variable"
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "httpx-per-task", "raw"),
        default="httpx",
        help="httpx: one httpx.AsyncClient, one pooled connection per task (default); httpx-per-task: "
        "one AsyncClient of one connection per task; raw: a minimal HTTP/1.1 client per task",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0, help="per request (default 30 s)")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="record the server with py-spy during the timed phase (raw stacks)"
    )
    parser.add_argument(
        "--py-spy-mode",
        choices=tuple(PY_SPY_MODES),
        default="gil",
        help="gil: only the thread holding the GIL (default); cpu: py-spy's default (threads not "
        "idle, which includes waits inside C extensions); wall: every thread, idle or not",
    )
    parser.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples/s (default 100)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (make test runs it)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 1.5
        args.clients = 8
        args.warmup = 10
    if args.seconds <= 0 or args.clients < 1 or args.warmup < 1 or args.request_timeout <= 0:
        parser.error("--seconds, --clients, --warmup and --request-timeout must be positive")
    if args.ping_tasks < 0:
        parser.error("--ping-tasks must be 0 or more")
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    if not is_loopback(args.database_url):
        parser.error("the database must be on loopback (127.0.0.1, ::1, localhost or a Unix socket)")
    return args


async def amain(args: argparse.Namespace, schema: str, data_dir: Path, servers: list[Server]) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM or SIGINT: stop the run, the server and drop the schema
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    version = str((await asyncio.to_thread(admin, args.database_url, sql.SQL("SHOW server_version")))[0][0])
    url = urlparse(args.database_url)
    where = f"{url.hostname or 'socket'}:{url.port or 5432}{url.path}"
    print(
        f"send text: {args.clients} clients x {args.seconds:g} s + {args.ping_tasks} ping task(s), "
        f"warm-up {args.warmup} sends, "
        f"PostgreSQL {version.split(maxsplit=1)[0]} at {where}, "
        f"nproc {len(os.sched_getaffinity(0))}, Python {sys.version.split()[0]}, "
        f"client {args.client} on {type(asyncio.get_running_loop()).__module__.split('.')[0]}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(code_fingerprint())
    report = await run(args, schema, data_dir, servers)
    return 0 if print_report(report) else 1


def run_loop(coroutine: Any) -> int:
    """uvloop when installed (a cheaper client leaves more CPU to the server), else asyncio."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return int(asyncio.run(coroutine))
    return int(uvloop.run(coroutine))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    schema = f"bench_{secrets.token_hex(4)}"
    data_dir = Path(tempfile.mkdtemp(prefix="warest-bench-"))
    servers: list[Server] = []

    def cleanup() -> None:
        shutil.rmtree(data_dir, ignore_errors=True)
        drop_schema(args.database_url, schema)

    watchdog(args.seconds + args.request_timeout + 240, servers, cleanup)
    try:
        return run_loop(amain(args, schema, data_dir, servers))
    except BenchError as error:
        print(f"send_text.py: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"send_text.py: database unavailable: {error}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        print("send_text.py: interrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            server.stop()
        try:
            cleanup()
        except psycopg.Error as error:
            print(f"send_text.py: schema {schema} not dropped: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
