"""Projection rebuild throughput: a large event log, then ``warest projections rebuild`` timed.

Phase 1, generation: ``--events`` events (1,000,000 by default) are produced by the domain
aggregates (``User``, ``Claim``, ``Session``, ``Chat``, ``Message``) and saved through the
event store exactly as the services save them: ``AsyncEventStore.save`` over a started
``GroupCommitter`` (2 ms window, batches of up to 1000 events), from ``--writers``
concurrent asyncio tasks. HTTP and the engines are bypassed. The mix is that of a busy
gateway: a few users, each with a few open sessions that sometimes reconnect, hundreds of
chats per session; outbound messages are queued in one save, sent and acknowledged by the
server in a later one (a few thousand events later), their delivered and read receipts in
later saves still (up to ~60k events later), a few sends fail; inbound messages, some
from the account's own phone, some in groups; reactions, edits, revokes, stars and chat
flags (mute, archive, pin, read, clear).

Phase 2, rebuild: ``python -m warest.cli projections rebuild`` runs as a subprocess with
``WAREST_DATABASE_URL``, ``WAREST_DATABASE_SCHEMA`` and ``WAREST_DATA_DIR`` set. Its
progress bars (stderr) and "rebuilt NAME" lines (stdout) are timestamped as they arrive,
which gives each projection's time; the overall figure is the events in the log divided by
the wall time of the whole command (process start-up included).

Everything happens in a fresh schema ``bench_<random>`` that is dropped at the end.

    .venv/bin/python bench/rebuild.py [--events 1000000] [--database-url URL]

The database URL comes from ``--database-url``, else ``WAREST_BENCH_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``. Only loopback servers are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import ipaddress
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any
from urllib.parse import parse_qs, urlparse
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from warest.domain import ids
from warest.domain.chats import Chat
from warest.domain.claims import Claim
from warest.domain.errors import DomainError
from warest.domain.messages import Message, Status
from warest.domain.model import Aggregate, utcnow
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.values import Role
from warest.domain.webhooks import WebhookEndpoint
from warest.infra.db.migrations import migrate
from warest.infra.eventstore.adapter import AsyncEventStore
from warest.infra.eventstore.group_commit import GroupCommitter
from warest.infra.eventstore.store import EventStoreApp, postgres_env

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENTS_TABLE = "warest_events"
PROJECTIONS = ("registry", "messaging", "streams", "messages", "chats", "contacts")
READ_MODEL_TABLES = (
    "rm_users",
    "rm_sessions",
    "rm_message_index",
    "rm_pending_outbound",
    "rm_streams",
    "rm_messages",
    "rm_message_status",
    "rm_message_reactions",
    "rm_message_edits",
    "rm_chats",
    "rm_contacts",
)
_TEXT = (
    "ok thanks see you tomorrow the invoice is attached please confirm your order has shipped call me "
    "when you can meeting moved to 3pm good morning happy birthday where are you now payment received "
    "the package arrived let me check and get back to you sure no problem"
)
WORDS = tuple(_TEXT.split(" "))
EMOJI = ("👍", "❤️", "😂", "😮", "😢", "🙏", "🎉", "🔥")


# -- helpers ------------------------------------------------------------------------------


def is_loopback(database_url: str) -> bool:
    url = urlparse(database_url)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    if host.startswith("/") or host == "localhost":  # a Unix socket, or the local name
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin(database_url: str, statement: sql.SQL | sql.Composed, *, fetch_all: bool = False) -> Any:
    """Runs one statement on its own autocommit connection; returns the first value (or rows)."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        if not cursor.description:
            return None
        if fetch_all:
            return cursor.fetchall()
        row = cursor.fetchone()
        return row[0] if row else None


def watchdog(limit_s: float, on_expire: list[Any]) -> None:
    """The bench must end by itself, even if something hangs (the CLI child is killed too)."""

    def expire() -> None:
        print(f"rebuild.py: no result after {limit_s:.0f} s, giving up", file=sys.stderr, flush=True)
        for child in on_expire:
            with contextlib.suppress(OSError):
                child.kill()
        os._exit(3)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()


# -- generation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRef:
    registry: str
    session: str
    jid: str
    group: bool


@dataclass
class World:
    """What the writers share: the target, the count so far and the sessions."""

    target: int
    generated: int = 0
    saves: int = 0
    sessions: list[Session] = field(default_factory=list)
    done: bool = False


@dataclass(order=True)
class Due:
    step: int
    seq: int
    message: Message = field(compare=False)
    status: Status = field(compare=False)


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 18)))


def phone(rng: random.Random) -> str:
    return "628" + "".join(rng.choice("0123456789") for _ in range(9))


def chat_refs(world: World, rng: random.Random, direct: int, groups: int) -> list[ChatRef]:
    refs = []
    for session in world.sessions:
        for i in range(direct):
            jid = f"{rng.randrange(10**14, 10**15)}@lid" if i % 20 == 19 else f"{phone(rng)}@s.whatsapp.net"
            refs.append(ChatRef(session.registry, session.name, jid, False))
        for _ in range(groups):
            refs.append(
                ChatRef(session.registry, session.name, f"120363{rng.randrange(10**11, 10**12)}@g.us", True)
            )
    rng.shuffle(refs)
    return refs


async def save(store: AsyncEventStore, world: World, aggregates: list[Aggregate]) -> None:
    unique = list({id(a): a for a in aggregates}.values())
    count = sum(len(a.pending_events) for a in unique)
    if count == 0:
        return
    await store.save(*unique)
    world.generated += count
    world.saves += 1
    if world.generated >= world.target:
        world.done = True


async def setup(store: AsyncEventStore, world: World, rng: random.Random, users: int, sessions: int) -> None:
    """Users (with their username and registry claims) and their open sessions."""
    for u in range(users):
        username, registry = f"bench{u}", f"BENCH{u:02d}"
        uid = uuid4()
        user = User.register(uid, username, registry, Role.USER, "$argon2id$bench", secrets.token_hex(32))
        claims = [
            Claim.claim(ids.username_claim_id(username), "username", username, uid),
            Claim.claim(ids.registry_claim_id(registry), "registry", registry, uid),
        ]
        await save(store, world, [user, *claims])
        for s in range(sessions):
            session = Session.create(registry, f"s{s}", f"line {s}", True, "sandbox")
            session.issue_qr(60, 1)
            session.connecting()
            me = phone(rng)
            session.opened(f"{me}@s.whatsapp.net", f"{rng.randrange(10**14, 10**15)}@lid", f"Bench {u}.{s}")
            endpoint = WebhookEndpoint.add(
                registry, f"s{s}", "main", f"https://hooks.example/{registry}/{s}", "sealed:bench"
            )
            await save(store, world, [session, endpoint])
            world.sessions.append(session)
    # A session that is deleted and created again (its stream is reused).
    spare = Session.create("BENCH00", "spare", None, False, "sandbox")
    spare.delete()
    spare.recreate("spare again", False, "sandbox")
    await save(store, world, [spare])


async def lifecycle(store: AsyncEventStore, world: World, rng: random.Random) -> None:
    """Sessions reconnect, get reconfigured, close and reopen now and then."""
    while not world.done:
        await asyncio.sleep(0.05)
        session = rng.choice(world.sessions)
        roll = rng.random()
        if roll < 0.5:
            session.reconnecting(rng.randint(1, 5), "stream error")
            session.connecting()
            session.opened(session.me_jid or "", session.me_lid, session.push_name)
        elif roll < 0.7:
            session.closed("stopped")
            session.connecting()
            session.opened(session.me_jid or "", session.me_lid, session.push_name)
        elif roll < 0.9:
            session.configure(label=f"line {rng.randint(0, 99)}")
        else:
            session.configure(auto_start=not session.auto_start)
        await save(store, world, [session])


class Writer:
    """One concurrent client: it owns some chats (so it never conflicts with another)."""

    def __init__(self, index: int, chats: list[ChatRef], seed: int, group: int) -> None:
        self.index = index
        self.rng = random.Random(seed)
        self.chats = chats
        self.weights = [1.0 / (rank + 1) for rank in range(len(chats))]  # a few chats are busy
        self.group = group
        self.step = 0
        self.seq = 0
        self.due: list[Due] = []
        self.recent: deque[Message] = deque(maxlen=200)
        self.recent_out: deque[Message] = deque(maxlen=100)
        self.chat_aggregates: dict[UUID, Chat] = {}

    def pick(self) -> ChatRef:
        return self.rng.choices(self.chats, self.weights)[0]

    def schedule(self, message: Message, after: int, status: Status) -> None:
        self.seq += 1
        heapq.heappush(self.due, Due(self.step + after, self.seq, message, status))

    def outbound(self) -> Message:
        rng, chat = self.rng, self.pick()
        wa_id = "3EB0" + secrets.token_hex(9).upper()
        mentions = [f"{phone(rng)}@s.whatsapp.net"] if chat.group and rng.random() < 0.1 else []
        reply_to = self.recent[-1].wa_id if self.recent and rng.random() < 0.05 else None
        message = Message.queue(
            chat.registry, chat.session, chat.jid, wa_id, text(rng), mentions, reply_to, None
        )
        self.schedule(message, rng.randint(1, 2), Status.SENT)  # the session's queue sends it
        return message

    def send(self, message: Message) -> None:
        """The engine's outcome: sent (and acknowledged by the server), or failed."""
        rng, now = self.rng, utcnow()
        if rng.random() < 0.02:
            message.mark_failed("recipient is not on WhatsApp", "404", 3)
            return
        sent_id = message.wa_id if rng.random() < 0.9 else "3EB0" + secrets.token_hex(9).upper()
        message.mark_sent(sent_id, now, 1)
        message.apply_receipt(Status.SERVER, now)
        delivered = rng.randint(1, 6)
        self.schedule(message, delivered, Status.DELIVERED)
        if rng.random() < 0.7:
            self.schedule(message, delivered + rng.randint(1, 40), Status.READ)
        self.recent_out.append(message)
        self.recent.append(message)

    def inbound(self) -> Message:
        rng, chat = self.rng, self.pick()
        from_me = rng.random() < 0.05
        sender = f"{phone(rng)}@s.whatsapp.net" if chat.group else chat.jid
        now = utcnow()
        message = Message.receive(
            chat.registry,
            chat.session,
            secrets.token_hex(10).upper(),
            chat=chat.jid,
            sender=sender,
            from_me=from_me,
            text=text(rng),
            push_name=None if from_me else f"Contact {sender[3:7]}",
            quoted_id=self.recent[-1].wa_id if self.recent and rng.random() < 0.05 else None,
            sent_at=now - timedelta(milliseconds=rng.randint(50, 3000)),
        )
        self.recent.append(message)
        return message

    def chat_action(self) -> Chat:
        rng, ref = self.rng, self.pick()
        chat_id = ids.chat_id(ref.registry, ref.session, ref.jid)
        chat = self.chat_aggregates.get(chat_id)
        if chat is None:
            chat = self.chat_aggregates[chat_id] = Chat.start(ref.registry, ref.session, ref.jid)
        roll, now = rng.random(), utcnow()
        if roll < 0.5:
            chat.mark_read(now, [m.wa_id for m in list(self.recent)[-3:]])
        elif roll < 0.65:
            chat.mute(None if chat.muted_until else now + timedelta(hours=8))
        elif roll < 0.8:
            chat.archive(not chat.archived)
        elif roll < 0.95:
            chat.pin(not chat.pinned)
        else:
            chat.clear(now)
        return chat

    def next_batch(self) -> list[Aggregate]:
        """The aggregates of one save: new messages, due receipts, actions."""
        self.step += 1
        rng, now = self.rng, utcnow()
        out: list[Aggregate] = []
        while self.due and self.due[0].step <= self.step:
            due = heapq.heappop(self.due)
            if due.status == Status.SENT:
                self.send(due.message)
                out.append(due.message)
            elif due.message.apply_receipt(due.status, now, None):
                out.append(due.message)
        for _ in range(self.group):
            roll = rng.random()
            try:
                if roll < 0.40:
                    out.append(self.outbound())
                elif roll < 0.88:
                    out.append(self.inbound())
                elif roll < 0.93 and self.recent:
                    message = rng.choice(self.recent)
                    actor = (
                        message.chat
                        if message.chat.endswith("@s.whatsapp.net")
                        else f"{phone(rng)}@s.whatsapp.net"
                    )
                    emoji = "" if actor in message.reactions and rng.random() < 0.3 else rng.choice(EMOJI)
                    message.react(actor, emoji, now)
                    out.append(message)
                elif roll < 0.95 and self.recent_out:
                    message = rng.choice(self.recent_out)
                    message.edit(text(rng), now, None, enforce=False)
                    out.append(message)
                elif roll < 0.955 and self.recent_out:
                    message = rng.choice(self.recent_out)
                    message.revoke(now, None, enforce=False)
                    out.append(message)
                elif roll < 0.965 and self.recent:
                    message = rng.choice(self.recent)
                    message.star(not message.starred)
                    out.append(message)
                else:
                    out.append(self.chat_action())
            except DomainError:
                continue  # e.g. reacting to a revoked message: WhatsApp would refuse it too
        return out


async def write(writer: Writer, store: AsyncEventStore, world: World) -> None:
    while not world.done:
        await save(store, world, writer.next_batch())


@dataclass
class Generated:
    events: int
    seconds: float
    saves: int
    batches: int


async def generate(args: argparse.Namespace, schema: str) -> Generated:
    store = await asyncio.to_thread(
        lambda: EventStoreApp(env=postgres_env(args.database_url, schema, args.pool_size))
    )
    committer = GroupCommitter(store, enabled=True, window_s=args.window_ms / 1000)
    committer.start()
    executor = ThreadPoolExecutor(max_workers=args.pool_size, thread_name_prefix="bench-es")
    try:
        events = AsyncEventStore(store, committer, executor)
        rng = random.Random(args.seed)
        world = World(target=args.events)
        started = time.perf_counter()
        await setup(events, world, rng, args.users, args.sessions)
        refs = chat_refs(world, rng, args.chats, max(1, args.chats // 15))
        writers = [
            Writer(i, refs[i :: args.writers], args.seed * 1000 + i, args.group) for i in range(args.writers)
        ]
        reporter = asyncio.create_task(report_progress(world, started))
        await asyncio.gather(lifecycle(events, world, rng), *(write(w, events, world) for w in writers))
        elapsed = time.perf_counter() - started
        reporter.cancel()
        await asyncio.to_thread(committer.stop)
        return Generated(world.generated, elapsed, world.saves, committer.batches)
    finally:
        await asyncio.to_thread(committer.stop)
        store.close()
        executor.shutdown(wait=True, cancel_futures=True)


async def report_progress(world: World, started: float) -> None:
    while True:
        await asyncio.sleep(10)
        elapsed = time.perf_counter() - started
        print(
            f"  ... {world.generated:,} events in {elapsed:.0f} s ({world.generated / elapsed:,.0f}/s)",
            file=sys.stderr,
            flush=True,
        )


# -- rebuild ------------------------------------------------------------------------------


@dataclass
class Rebuilt:
    seconds: float  # wall time of the whole command
    started: dict[str, float]  # projection -> when its progress bar appeared
    finished: dict[str, float]  # projection -> when "rebuilt NAME" was printed
    counts: dict[str, int]  # projection -> events it reported
    returncode: int
    stderr_tail: str


def run_cli(args: argparse.Namespace, schema: str, children: list[Any]) -> Rebuilt:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WAREST_DATABASE_URL": args.database_url,
        "WAREST_DATABASE_SCHEMA": schema,
        "PYTHONUNBUFFERED": "1",
    }
    if args.pythonpath:  # another checkout's code, to compare versions on the same log
        env["PYTHONPATH"] = args.pythonpath
    command = [sys.executable, "-m", "warest.cli", "projections", "rebuild"]
    if args.only:
        command.append(args.only)
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    counts: dict[str, int] = {}
    tail: deque[str] = deque(maxlen=40)
    bar = re.compile(r"(?:^|\r|\n)(" + "|".join(PROJECTIONS) + r"):")
    done_line = re.compile(r"^rebuilt (\w+): (\d+) events")
    with tempfile.TemporaryDirectory(prefix="warest-bench-") as data_dir:
        env["WAREST_DATA_DIR"] = data_dir
        t0 = time.perf_counter()
        child = subprocess.Popen(  # not in the checkout: --pythonpath must win over ./projections
            command,
            env=env,
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        children.append(child)

        def read_stderr(stream: IO[str]) -> None:
            # os.read returns what is there (tqdm redraws with \r, without newlines).
            pending, fd = "", stream.fileno()
            while chunk := os.read(fd, 4096).decode(errors="replace"):
                now = time.perf_counter() - t0
                pending = (pending + chunk)[-300:]
                for match in bar.finditer(pending):
                    started.setdefault(match.group(1), now)
                tail.append(chunk)

        reader = threading.Thread(target=read_stderr, args=(child.stderr,), daemon=True)
        reader.start()
        assert child.stdout is not None
        for line in child.stdout:
            match = done_line.match(line)
            if match:
                finished[match.group(1)] = time.perf_counter() - t0
                counts[match.group(1)] = int(match.group(2))
        returncode = child.wait()
        seconds = time.perf_counter() - t0
        reader.join(timeout=5)
    return Rebuilt(seconds, started, finished, counts, returncode, "".join(tail)[-2000:])


def checksums(database_url: str, schema: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every read-model table's rows in a storage-independent order."""
    found = {}
    for table in READ_MODEL_TABLES:
        statement = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {}.{} t"
        ).format(sql.Identifier(schema), sql.Identifier(table))
        rows = admin(database_url, statement, fetch_all=True)
        found[table] = (int(rows[0][0]), str(rows[0][1]))
    return found


def topic_counts(database_url: str, schema: str) -> Iterator[tuple[str, int]]:
    statement = sql.SQL("SELECT topic, count(*) FROM {}.{} GROUP BY topic ORDER BY 2 DESC").format(
        sql.Identifier(schema), sql.Identifier(EVENTS_TABLE)
    )
    for topic, count in admin(database_url, statement, fetch_all=True):
        yield str(topic).rsplit(":", 1)[-1], int(count)


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events to generate (default 1,000,000)"
    )
    parser.add_argument("--writers", type=int, default=32, help="concurrent writer tasks (default 32)")
    parser.add_argument("--group", type=int, default=16, help="actions per writer save (default 16)")
    parser.add_argument("--users", type=int, default=4, help="users (default 4)")
    parser.add_argument("--sessions", type=int, default=3, help="sessions per user (default 3)")
    parser.add_argument("--chats", type=int, default=300, help="direct chats per session (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mix (default 1)")
    parser.add_argument("--pool-size", type=int, default=8, help="event-store pool (default 8)")
    parser.add_argument("--window-ms", type=float, default=2.0, help="group commit window (default 2)")
    parser.add_argument("--only", choices=PROJECTIONS, help="rebuild only this projection")
    parser.add_argument("--checksums", action="store_true", help="print count and md5 of each read model")
    parser.add_argument("--keep", action="store_true", help="do not drop the schema (its name is printed)")
    parser.add_argument("--schema", help="rebuild in this existing schema instead of generating one")
    parser.add_argument(
        "--pythonpath",
        help="PYTHONPATH of the rebuild command (e.g. OTHER/src:OTHER to time another checkout)",
    )
    parser.add_argument("--timeout", type=float, help="watchdog, seconds (default 600 + events/1500)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WAREST_BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL on loopback (default: $WAREST_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (make test runs it)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events = 3000
        args.users = 1
        args.sessions = 2
        args.chats = 20
        args.checksums = True
    if args.events < 1 or args.writers < 1 or args.group < 1 or args.users < 1 or args.sessions < 1:
        parser.error("--events, --writers, --group, --users and --sessions must be positive")
    if args.chats < 1:
        parser.error("--chats must be positive")
    if not is_loopback(args.database_url):
        parser.error("the database must be on loopback (127.0.0.1, ::1, localhost or a Unix socket)")
    if args.schema and not args.schema.startswith("bench_"):
        parser.error("--schema must name a bench_ schema")
    return args


def main(args: argparse.Namespace, children: list[Any]) -> int:
    url = args.database_url
    version = str(admin(url, sql.SQL("SHOW server_version"))).split(maxsplit=1)[0]
    parsed = urlparse(url)
    print(
        f"projection rebuild: PostgreSQL {version} at {parsed.hostname or 'socket'}:{parsed.port or 5432}"
        f"{parsed.path}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    schema = args.schema or f"bench_{secrets.token_hex(4)}"
    keep = args.keep or bool(args.schema)
    try:
        if not args.schema:
            admin(url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            migrate(url, schema)
            print(
                f"generating {args.events:,} events: {args.writers} writers x {args.group} actions per save, "
                f"{args.users} users x {args.sessions} sessions x {args.chats} chats, group commit "
                f"{args.window_ms:g} ms, pool {args.pool_size}, schema {schema}"
            )
            made = asyncio.run(generate(args, schema))
            print(
                f"generated {made.events:,} events in {made.seconds:.1f} s: "
                f"{made.events / made.seconds:,.0f} events/s ({made.saves:,} saves, "
                f"{made.batches:,} transactions, "
                f"{made.events / max(made.batches, 1):.0f} events/transaction)"
            )
            # The log of a live system has long been vacuumed: set hint bits and statistics now
            # so that the first reader does not pay for them.
            admin(
                url,
                sql.SQL("VACUUM (ANALYZE) {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(EVENTS_TABLE)
                ),
            )
        total = int(
            admin(
                url,
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(EVENTS_TABLE)
                ),
            )
            or 0
        )
        print(f"log: {total:,} events; " + ", ".join(f"{t} {c:,}" for t, c in topic_counts(url, schema)))
        print(
            f"rebuilding {args.only or 'every projection'}: "
            + (f"PYTHONPATH={args.pythonpath} " if args.pythonpath else "")
            + f"{sys.executable} -m warest.cli projections rebuild"
        )
        result = run_cli(args, schema, children)
        if result.returncode != 0:
            print(f"the rebuild failed (exit {result.returncode}):\n{result.stderr_tail}", file=sys.stderr)
            return 1
        print()
        header = (
            f"{'projection':<11} {'its events':>11} {'seconds':>8} {'its events/s':>13} {'log events/s':>13}"
        )
        print(header)
        print("-" * len(header))
        for name in PROJECTIONS:
            if name not in result.finished:
                continue
            seconds = result.finished[name] - result.started.get(name, 0.0)
            count = result.counts[name]
            print(
                f"{name:<11} {count:>11,} {seconds:>8.2f} {count / seconds:>13,.0f} {total / seconds:>13,.0f}"
            )
        busy = sum(result.finished[n] - result.started.get(n, 0.0) for n in result.finished)
        print("-" * len(header))
        print(f"{'sum':<11} {'':>11} {busy:>8.2f} {'':>13} {total / busy:>13,.0f}")
        print()
        print(
            f"rebuild: {total:,} events in {result.seconds:.1f} s (whole command, start-up included): "
            f"{total / result.seconds:,.0f} events/s"
        )
        if args.checksums:
            print()
            for table, (count, digest) in checksums(url, schema).items():
                print(f"{table:<22} {count:>10,} {digest}")
        return 0
    finally:
        if keep:
            print(f"schema kept: {schema}")
        else:
            admin(url, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    spawned: list[Any] = []
    watchdog(arguments.timeout or 600 + arguments.events / 1500, spawned)
    try:
        sys.exit(main(arguments, spawned))
    except psycopg.OperationalError as error:
        sys.exit(f"rebuild.py: database unavailable: {error}")
    except KeyboardInterrupt:
        for process in spawned:
            process.kill()
        raise
