"""Webhook delivery of a real ``warest serve`` process to a real loopback receiver.

The script starts the receiver (``tests/e2e/receiver.py``) and ``warest serve`` (sandbox
engine, fresh PostgreSQL schema ``bench_<random>``), creates a tenant with ``--sessions``
sandbox sessions (50 by default), each with a webhook endpoint for ``message_received``,
and an external sandbox account that writes to them. Then:

1. **Latency at a fixed rate**: inbound messages at ``--rate`` per second (500 by
   default), round robin over the sessions, for ``--seconds``. For every delivery it
   takes the time from the inbound happening (the event's ``ts``, set when the gateway
   recorded the inbound message) to the receiver's arrival time, and prints p50/p90/p99/max.
   It also prints the same from the moment the bench client sent the inbound message.
2. **Throughput**: every event of phase 1 is replayed to every endpoint at once (one
   ``replay`` call per session: the same ids, a backlog of ``rate * seconds``
   deliveries), and the receiver's arrival times give deliveries/s while the backlog drains.

Per session, deliveries must arrive in sequence order; the script checks it and exits 1
on a reorder or a missing event.

    .venv/bin/python bench/webhooks.py [--sessions 50] [--rate 500] [--seconds 10]

The database URL comes from ``--database-url``, else ``WAREST_BENCH_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.receiver import ReceiverProcess  # noqa: E402
from tests.e2e.server import ServerProcess, sandbox_env  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_KEY = "wrst_bench-webhooks-admin-key-0123456789abcdefghijkl"
SENDER = "6289900000000"
TARGET_DELIVERIES_PER_S = 2000.0
TARGET_P99_MS = 50.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phone(i: int) -> str:
    return f"62899{i:08d}"


def setup(server: ServerProcess, sessions: int, receiver_url: str) -> httpx.Client:
    with server.client(ADMIN_KEY) as admin:
        user = admin.post("/api/v1/users", json={"username": "bench-hooks"}).json()["results"][0]
    client = server.client(user["apiKey"])
    assert client.post("/api/v1/sandbox/accounts", json={"phone": SENDER}).status_code == 201
    for i in range(sessions):
        name = f"s{i}"
        created = client.post("/api/v1/session/create", json={"sessionId": name, "engine": "sandbox"})
        assert created.status_code in (200, 202), created.text
        scanned = client.post("/api/v1/sandbox/scan", json={"sessionId": name, "phone": phone(i)})
        assert scanned.status_code == 200, scanned.text
    deadline = time.monotonic() + 60
    while True:
        listed = client.get("/api/v1/session/list").json()["results"][0]["items"]
        if sum(1 for s in listed if s["status"] == "open") == sessions:
            break
        if time.monotonic() > deadline:
            raise SystemExit("sessions did not open")
        time.sleep(0.2)
    for i in range(sessions):
        hook = client.post(
            f"/api/v1/session/s{i}/webhooks",
            json={"url": f"{receiver_url}/hook", "events": ["message_received"]},
        )
        assert hook.status_code == 201, hook.text
    return client


async def drive(base: str, key: str, sessions: int, rate: float, seconds: float) -> tuple[int, int]:
    """Inbound messages at ``rate``/s; the text carries the client's send time (ns).

    aiohttp, not httpx: on a small machine the bench client shares the CPU with the server,
    and httpx costs ~10x more CPU per request."""
    sent = errors = 0
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(base, connector=connector, headers={"X-WAREST-API-KEY": key}) as client:
        gate = asyncio.Semaphore(32)
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal sent, errors
            async with gate:
                body = {"from": SENDER, "to": phone(i % sessions), "text": str(time.time_ns())}
                async with client.post("/api/v1/sandbox/messages", json=body) as response:
                    await response.read()
                    if response.status == 200:
                        sent += 1
                    else:
                        errors += 1

        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return sent, errors


class Collector:
    """Reads the receiver's records incrementally (``after`` = the last seq seen): a poll
    costs the receiver only the new records, so polling does not slow deliveries down."""

    def __init__(self, receiver_url: str) -> None:
        self._url = receiver_url
        self._after = 0
        self.found: list[dict[str, Any]] = []

    def poll(self) -> None:
        with httpx.Client(timeout=60) as client:
            page = client.get(f"{self._url}/_control/records", params={"after": self._after}).json()
        if page:
            self.found.extend(page)
            self._after = page[-1]["seq"]

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if len(self.found) >= count or time.monotonic() > deadline:
                return self.found
            time.sleep(0.25)


def report_latency(found: list[dict[str, Any]], sent: int) -> None:
    bodies = [json.loads(r["body"]) for r in found]
    unique = len({b["data"]["eventId"] for b in bodies})
    print(f"  delivered {unique} of {sent} events ({len(found) - unique} repeated)")
    from_event = [r["t"] * 1000 - b["ts"] for r, b in zip(found, bodies, strict=True)]
    from_client = [r["t"] * 1000 - int(b["data"]["text"]) / 1e6 for r, b in zip(found, bodies, strict=True)]
    for name, values in (("from the inbound event", from_event), ("from the client's send", from_client)):
        p50, p90, p99 = (percentile(values, q) for q in (0.5, 0.9, 0.99))
        print(
            f"  latency {name}: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms,"
            f" max {max(values, default=0):.1f} ms"
        )


def report_outbox_lag(database_url: str, schema: str) -> None:
    """How long events took to enter the outbox (event time -> the outbox's fold)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT extract(epoch FROM d.created_at) * 1000 - e.ts FROM {}.wh_deliveries d"
                " JOIN {}.wh_events e ON e.position = d.position WHERE e.event = 'message_received'"
            ).format(sql.Identifier(schema), sql.Identifier(schema))
        ).fetchall()
    lags = [float(r[0]) for r in rows]
    p50, p90, p99 = (percentile(lags, q) for q in (0.5, 0.9, 0.99))
    print(f"  of which into the outbox: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")


def check_order(found: list[dict[str, Any]]) -> list[str]:
    problems = []
    highest: dict[str, int] = defaultdict(int)
    seen: set[str] = set()
    for record in found:
        data = json.loads(record["body"])["data"]
        session = record["headers"]["x-warest-session"]
        if data["eventId"] in seen:
            continue
        seen.add(data["eventId"])
        if data["sequence"] <= highest[session]:
            problems.append(f"{session}: sequence {data['sequence']} after {highest[session]}")
        highest[session] = data["sequence"]
    return problems


def start_profiler(args: argparse.Namespace, server: ServerProcess) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` (raw collapsed stacks, GIL holder only) of the server tree."""
    if not args.py_spy or server.proc is None:
        return None
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    target = ["--pid", str(server.proc.pid), "--subprocesses", "--gil", "--nonblocking"]
    output = ["--duration", str(args.py_spy_seconds), "--format", "raw", "--output", args.py_spy]
    command = [py_spy, "record", *target, *output]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches
    return process


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=os.environ.get("WAREST_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--py-spy", metavar="FILE", help="record the server (GIL holder) during phase 2")
    parser.add_argument("--py-spy-seconds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (make test runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.sessions = 2
        args.rate = 20.0
        args.seconds = 2.0
    schema = f"bench_{secrets.token_hex(4)}"
    status = 0
    with tempfile.TemporaryDirectory() as tmp, ReceiverProcess() as receiver:
        env = sandbox_env(
            args.database_url,
            schema,
            Path(tmp) / "data",
            ADMIN_KEY,
            WAREST_WEBHOOK_ALLOW_PRIVATE="true",
            PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT),
            **dict(item.split("=", 1) for item in args.set),
        )
        server = ServerProcess(env, Path(tmp))
        server.start()
        try:
            client = setup(server, args.sessions, receiver.url)
            hooks = receiver.client()
            hooks.clear()
            key = str(client.headers["X-WAREST-API-KEY"])
            started = time.perf_counter()
            sent, errors = asyncio.run(drive(server.base, key, args.sessions, args.rate, args.seconds))
            elapsed = time.perf_counter() - started
            found = Collector(receiver.url).wait_for(sent, timeout=120)
            rate = sent / elapsed
            print(f"phase 1: {sent} inbound messages in {elapsed:.1f}s ({rate:.0f}/s, {errors} errors)")
            report_latency(found, sent)
            report_outbox_lag(args.database_url, schema)
            problems = check_order(found)
            if len(found) < sent or problems:
                print(f"  PROBLEM: {len(found)} delivered of {sent}; order: {problems[:5]}")
                status = 1
            hooks.clear()
            profiler = start_profiler(args, server)
            replay_started = time.time()
            for i in range(args.sessions):
                replayed = client.post(
                    f"/api/v1/session/s{i}/webhooks/primary/replay", json={"fromPosition": 1}
                )
                assert replayed.status_code == 202, replayed.text
            again = Collector(receiver.url).wait_for(len(found), timeout=300)
            times = sorted(r["t"] for r in again)
            span = times[-1] - replay_started if times else float("nan")
            steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
            print(
                f"phase 2: replayed {len(again)} deliveries in {span:.2f}s from the replay calls:"
                f" {len(again) / span:.0f} deliveries/s"
                f" ({steady:.0f}/s between the first and the last arrival)"
            )
            print(
                f"targets: >= {TARGET_DELIVERIES_PER_S:.0f} deliveries/s,"
                f" p99 <= {TARGET_P99_MS:.0f} ms at 500 events/s"
            )
            if profiler is not None:
                profiler.wait(timeout=60)
            problems = check_order(again)
            if problems:
                print(f"  PROBLEM: replay order: {problems[:5]}")
                status = 1
            hooks.close()
            client.close()
        finally:
            server.stop()
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return status


if __name__ == "__main__":
    sys.exit(main())
