"""Event-store append throughput through the application, with group commit on and off.

``--clients`` asyncio tasks (64 by default) each send single-event commands back to back:
every command creates a new Session aggregate (one ``Created`` event, unique name) and
awaits ``AsyncEventStore.save``, the same path the HTTP layer uses. The run lasts
``--seconds`` and is done three times, each in a fresh PostgreSQL schema that is dropped at
the end: with the server's writer (``AsyncGroupCommitter``: a task on the event loop,
asyncpg), with the thread writer of the command line and the projector (``GroupCommitter``,
the library's ``put()``), and with group commit off (one transaction per command). After each
run the rows of ``<schema>.warest_events`` are counted and must equal
the commands that were acknowledged.

    .venv/bin/python bench/append.py [--seconds 8] [--clients 64] [--database-url URL]

The database URL comes from ``--database-url``, else ``WAREST_BENCH_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``. Only loopback servers are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
from psycopg import sql

from warest.config import Settings
from warest.domain.sessions import Session
from warest.infra.db.migrations import migrate
from warest.infra.eventstore.adapter import AsyncEventStore
from warest.infra.eventstore.async_commit import AsyncGroupCommitter
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp, postgres_env

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENTS_TABLE = "warest_events"
REGISTRY = "BENCH"


@dataclass(frozen=True)
class RunResult:
    label: str
    commands: int  # acknowledged within the timed phase (one event each)
    elapsed_s: float
    latencies_ms: list[float]  # sorted
    batches: int  # event-store transactions during the timed phase
    acknowledged: int  # every acknowledged command, warm-up included
    rows: int  # rows found in the events table after the run

    @property
    def events_per_s(self) -> float:
        return self.commands / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def events_per_batch(self) -> float:
        return self.commands / self.batches if self.batches else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        index = min(len(self.latencies_ms) - 1, max(0, round(p / 100 * len(self.latencies_ms)) - 1))
        return self.latencies_ms[index]

    @property
    def durable(self) -> bool:
        return self.rows == self.acknowledged


def is_loopback(database_url: str) -> bool:
    url = urlparse(database_url)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    if host.startswith("/") or host == "localhost":  # a Unix socket, or the local name
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin(database_url: str, statement: sql.SQL | sql.Composed) -> Any:
    """Runs one statement on its own autocommit connection; returns the first value, if any."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        row = cursor.fetchone() if cursor.description else None
        return row[0] if row else None


async def client(
    index: int,
    store: AsyncEventStore,
    deadline: float,
    latencies: list[float],
    counter: list[int],
) -> int:
    """Sends commands until ``deadline``; returns how many were acknowledged."""
    done = 0
    while time.perf_counter() < deadline:
        counter[0] += 1
        started = time.perf_counter()
        session = Session.create(REGISTRY, f"c{index}-{counter[0]}", None, True, "sandbox")
        await store.save(session)
        latencies.append((time.perf_counter() - started) * 1000)
        done += 1
    return done


async def warm_up(index: int, store: AsyncEventStore, counter: list[int]) -> int:
    counter[0] += 1
    await store.save(Session.create(REGISTRY, f"w{index}-{counter[0]}", None, True, "sandbox"))
    return 1


async def run_once(
    label: str,
    *,
    writer: str,
    database_url: str,
    clients: int,
    seconds: float,
    pool_size: int,
    window_s: float,
) -> RunResult:
    schema = f"bench_{secrets.token_hex(4)}"
    await asyncio.to_thread(admin, database_url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    store: EventStoreApp | None = None
    committer: GroupCommitter | AsyncGroupCommitter | None = None
    executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="bench-es")
    try:
        store = await asyncio.to_thread(
            lambda: EventStoreApp(env=postgres_env(database_url, schema, pool_size))
        )
        await asyncio.to_thread(migrate, database_url, schema)  # the server's append function
        if writer == "async":
            committer = AsyncGroupCommitter(store, database_url, schema, window_s=window_s)
            await committer.start()
        else:
            committer = GroupCommitter(store, enabled=writer == "thread", window_s=window_s)
            committer.start()
        events = AsyncEventStore(store, committer, executor)
        counter = [0]

        # Warm-up, not timed: one command per client opens connections and prepares statements.
        warmed = sum(await asyncio.gather(*(warm_up(i, events, counter) for i in range(clients))))

        batches_before = committer.batches
        latencies: list[float] = []
        started = time.perf_counter()
        async with asyncio.timeout(seconds + 60):
            done = await asyncio.gather(
                *(client(i, events, started + seconds, latencies, counter) for i in range(clients))
            )
        elapsed = time.perf_counter() - started
        batches = committer.batches - batches_before

        await stop(committer)
        committed = sum(done)
        rows = await asyncio.to_thread(
            admin,
            database_url,
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(EVENTS_TABLE)
            ),
        )
        return RunResult(
            label=label,
            commands=committed,
            elapsed_s=elapsed,
            latencies_ms=sorted(latencies),
            batches=batches,
            acknowledged=warmed + committed,
            rows=int(rows or 0),
        )
    finally:
        if committer is not None:
            await stop(committer)
        if store is not None:
            store.close()
        executor.shutdown(wait=True, cancel_futures=True)
        await asyncio.to_thread(
            admin, database_url, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def stop(committer: GroupCommitter | AsyncGroupCommitter) -> None:
    if isinstance(committer, AsyncGroupCommitter):
        await committer.stop()
    else:
        await asyncio.to_thread(committer.stop)


def print_table(results: list[RunResult]) -> None:
    header = (
        f"{'mode':<18} {'commands':>9} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'batches':>8} {'ev/batch':>8} {'rows':>8}  durable"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        check = "ok" if r.durable else f"MISMATCH: {r.acknowledged} acknowledged"
        print(
            f"{r.label:<18} {r.commands:>9} {r.events_per_s:>9.0f} {r.percentile(50):>8.1f} "
            f"{r.percentile(99):>8.1f} {r.batches:>8} {r.events_per_batch:>8.1f} {r.rows:>8}  {check}"
        )


def watchdog(limit_s: float) -> None:
    """The bench must end by itself, even if the event loop is stuck in a blocking call."""

    def expire() -> None:
        print(f"append.py: no result after {limit_s:.0f} s, giving up", file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env(environ={}, dotenv=None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed phase of each run (default 8)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent client tasks (default 64)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WAREST_BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL on loopback (default: $WAREST_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=defaults.database_pool_size,
        help="event-store connection pool (default %(default)s, as WAREST_DATABASE_POOL_SIZE)",
    )
    parser.add_argument(
        "--window-ms",
        type=float,
        default=float(defaults.group_commit_window_ms),
        help="group commit window (default %(default)s, as WAREST_GROUP_COMMIT_WINDOW_MS)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (make test runs it)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 1.0
        args.clients = 8
    if args.seconds <= 0 or args.clients < 1 or args.pool_size < 1 or args.window_ms < 0:
        parser.error("--seconds, --clients, --pool-size must be positive, --window-ms >= 0")
    if not is_loopback(args.database_url):
        parser.error("the database must be on loopback (127.0.0.1, ::1, localhost or a Unix socket)")
    return args


async def main(args: argparse.Namespace) -> int:
    url = urlparse(args.database_url)
    version = str(await asyncio.to_thread(admin, args.database_url, sql.SQL("SHOW server_version")))
    version = version.split(maxsplit=1)[0]
    print(
        f"event-store appends: {args.clients} clients x {args.seconds:g} s, one event per command, "
        f"pool {args.pool_size}, window {args.window_ms:g} ms, "
        f"PostgreSQL {version} at {url.hostname or 'socket'}:{url.port or 5432}{url.path}, "
        f"{os.cpu_count()} CPUs"
    )
    results: list[RunResult] = []
    writers = (("ON, server (loop)", "async"), ("ON, thread", "thread"), ("group commit OFF", "off"))
    for label, writer in writers:
        results.append(
            await run_once(
                label,
                writer=writer,
                database_url=args.database_url,
                clients=args.clients,
                seconds=args.seconds,
                pool_size=args.pool_size,
                window_s=args.window_ms / 1000,
            )
        )
    print()
    print_table(results)
    server, thread, off = results
    ratio = server.events_per_s / off.events_per_s if off.events_per_s else float("inf")
    print()
    print(
        f"group commit: {server.events_per_s:.0f} events/s on the loop, "
        f"{thread.events_per_s:.0f} in a thread; one-by-one: {off.events_per_s:.0f} events/s; "
        f"loop x{ratio:.1f}"
    )
    return 0 if all(r.durable for r in results) else 1


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    watchdog(2 * arguments.seconds + 180)
    try:
        sys.exit(asyncio.run(main(arguments)))
    except psycopg.OperationalError as error:
        sys.exit(f"append.py: database unavailable: {error}")
