"""Running sessions: one runtime per session links an engine connection to the domain.

A runtime is the engine's listener: every happening it reports becomes an event on the
Session or Message aggregates. It owns the session's outbound queue and keeps the
Session aggregate in memory (reloading it after a concurrency conflict).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from warest.app.engine import (
    Connection,
    Engine,
    EngineError,
    InboundMessage,
    Me,
    OutboundText,
    Receipt,
    SendResult,
    SessionRef,
)
from warest.app.outbound import Job, OutboundQueue, RetryPolicy
from warest.app.ports import ConcurrencyConflict, EventStore, LoginQrs, MessagingQueries
from warest.domain import ids
from warest.domain.errors import DomainError, NotFound, SessionNotFound
from warest.domain.messages import Message
from warest.domain.messages import Status as MessageStatus
from warest.domain.sessions import Session, Status

log = logging.getLogger("warest.runtime")

RECEIPT_BATCH = 2000


@dataclass(frozen=True)
class QrCode:
    qr: str
    duration_s: int
    issued_at: float


@dataclass(frozen=True)
class QueueSettings:
    concurrency: int = 1
    max_size: int = 1000
    policy: RetryPolicy = field(default_factory=RetryPolicy)


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self._size:
            self.popitem(last=False)


class SessionRuntime:
    """The live side of one session."""

    def __init__(
        self,
        ref: SessionRef,
        engine: Engine,
        store: EventStore,
        queries: MessagingQueries,
        queue_settings: QueueSettings,
        on_closed: Callable[[SessionRuntime], None],
        *,
        login_qrs: LoginQrs | None = None,
    ) -> None:
        self.ref = ref
        self._login_qrs = login_qrs
        self.engine = engine
        self._store = store
        self._queries = queries
        self._on_closed = on_closed
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self.changed = asyncio.Condition()
        self.current_qr: QrCode | None = None
        self.current_pairing_code: str | None = None
        self.queue = OutboundQueue(
            ref.key,
            self._send,
            self._record_outcome,
            queue_settings.policy,
            concurrency=queue_settings.concurrency,
            max_size=queue_settings.max_size,
        )
        self._inflight: dict[str, asyncio.Event] = {}
        self._receipts: deque[Receipt] = deque()
        self._receipt_task: asyncio.Task[None] | None = None
        self._messages: _Lru = _Lru(5000)
        self._wa_index: _Lru = _Lru(20000)
        self.connection: Connection = engine.connection(ref, self)

    # -- state ---------------------------------------------------------------

    @property
    def status(self) -> Status | None:
        return self._session.status if self._session else None

    async def session(self) -> Session:
        if self._session is None:
            session = await self._store.get(ids.session_id(self.ref.registry, self.ref.name))
            if session is None or session.deleted:
                raise SessionNotFound(f"session '{self.ref.name}' not found")
            self._session = session
        return self._session

    async def wait_until(self, predicate: Callable[[SessionRuntime], bool], timeout: float) -> bool:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self)), timeout)
            except TimeoutError:
                return predicate(self)
        return True

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _record(self, change: Callable[[Session], None]) -> None:
        """Applies ``change`` to the Session aggregate and saves it (reloading on conflict)."""
        async with self._lock:
            for attempt in range(3):
                session = await self.session()
                try:
                    change(session)
                    await self._store.save(session)
                    break
                except ConcurrencyConflict:
                    self._session = None
                    if attempt == 2:
                        raise
                except NotFound:
                    log.info("session %s is gone; ignoring a lifecycle report", self.ref.key)
                    break
                except BaseException:
                    self._session = None  # unsaved changes must not linger in memory
                    raise
        await self._notify()

    # -- commands from the application ----------------------------------------

    async def start(self, pair_phone: str | None = None) -> None:
        self.current_qr = None
        self.current_pairing_code = None
        await self.connection.start(pair_phone)

    async def stop(self, reason: str) -> None:
        self.queue.offline()
        await self.connection.stop()
        await self._record(lambda s: s.closed(reason))

    async def logout(self) -> None:
        self.queue.offline()
        await self.connection.logout()
        await self._record(lambda s: s.logged_out("logged out through the API"))
        await self.fail_pending("the session was logged out")

    async def shutdown(self) -> None:
        """Process shutdown: disconnect without recording anything (the session resumes)."""
        self.queue.offline()
        await self.queue.close()
        try:
            await self.connection.stop()
        except EngineError:
            log.warning("session %s did not stop cleanly", self.ref.key)
        await self.drain_receipts()

    async def resume_pending(self) -> int:
        """Queues the outbound messages recorded as queued but not yet sent (after a restart)."""
        added = 0
        for pending in await self._queries.pending_outbound(self.ref.registry, self.ref.name):
            text = OutboundText(
                to=pending.chat,
                local_id=pending.local_id,
                text=pending.text or "",
                mentions=tuple(pending.mentions),
                reply_to=pending.reply_to,
            )
            if self.queue.put(Job(pending.message_id, text)):
                added += 1
        if added:
            log.info("session %s: %d pending outbound messages re-queued", self.ref.key, added)
        return added

    async def fail_pending(self, reason: str) -> int:
        """Gives up every queued message: the account they were queued for is gone."""
        failed = 0
        for pending in await self._queries.pending_outbound(self.ref.registry, self.ref.name):
            message = await self._message(pending.message_id)
            if message is None or not message.pending:
                continue
            message.mark_failed(reason, "session_ended", message.attempts)
            try:
                await self._store.save(message)
                failed += 1
            except ConcurrencyConflict:
                self._messages.pop(pending.message_id, None)
        return failed

    # -- outbound --------------------------------------------------------------

    async def _send(self, text: OutboundText) -> SendResult:
        gate = asyncio.Event()
        self._inflight[text.local_id] = gate
        try:
            result = await self.connection.send_text(text)
            self._inflight[result.wa_id] = gate
            return result
        except BaseException:
            gate.set()
            self._inflight.pop(text.local_id, None)
            raise

    async def _record_outcome(
        self, job: Job, result: SendResult | None, error: EngineError | None, attempts: int
    ) -> None:
        try:
            for attempt in range(3):
                message = await self._message(job.message_id)
                if message is None or not message.pending:
                    return  # recorded already (e.g. by another process before a restart)
                if result is not None:
                    message.mark_sent(result.wa_id, result.sent_at, attempts)
                else:
                    assert error is not None
                    message.mark_failed(str(error), error.code, attempts)
                try:
                    await self._store.save(message)
                except ConcurrencyConflict:
                    self._messages.pop(job.message_id, None)
                    if attempt == 2:
                        raise
                    continue
                self._messages.remember(job.message_id, message)
                if result is not None:
                    self._wa_index.remember(result.wa_id, job.message_id)
                return
        finally:
            for key in (job.text.local_id, result.wa_id if result else None):
                gate = self._inflight.pop(key, None) if key else None
                if gate is not None:
                    gate.set()

    def remember(self, message: Message) -> None:
        """Keeps a just-queued message in memory (its receipts will find it without a read)."""
        self._messages.remember(message.id, message)
        self._wa_index.remember(message.wa_id, message.id)

    async def _message(self, message_id: UUID) -> Message | None:
        message: Message | None = self._messages.get(message_id)
        if message is None:
            message = await self._store.get(message_id)
            if message is not None:
                self._messages.remember(message_id, message)
        return message

    # -- EngineListener ---------------------------------------------------------

    async def qr(self, qr: str, duration_s: int, attempt: int) -> None:
        self.current_qr = QrCode(qr, duration_s, time.monotonic())
        # The QR string stays out of the log: the event says that a QR was shown; the
        # webhook outbox finds the string here.
        if self._login_qrs is not None:
            await self._login_qrs.put(ids.session_id(self.ref.registry, self.ref.name), attempt, qr)
        await self._record(lambda s: s.issue_qr(duration_s, attempt))

    async def pairing_code(self, code: str, phone: str) -> None:
        self.current_pairing_code = code
        await self._record(lambda s: s.issue_pairing_code(code, phone))

    async def connecting(self) -> None:
        await self._record(lambda s: s.connecting())

    async def opened(self, me: Me) -> None:
        self.current_qr = None
        self.current_pairing_code = None
        await self._record(lambda s: s.opened(me.jid, me.lid, me.push_name))
        await self.resume_pending()
        self.queue.online()

    async def reconnecting(self, attempt: int, reason: str) -> None:
        self.queue.offline()
        await self._record(lambda s: s.reconnecting(attempt, reason))

    async def logged_out(self, reason: str) -> None:
        self.queue.offline()
        await self._record(lambda s: s.logged_out(reason))
        await self.fail_pending("the session was logged out")
        self._on_closed(self)

    async def replaced(self, reason: str) -> None:
        self.queue.offline()
        await self._record(lambda s: s.replaced(reason))
        self._on_closed(self)

    async def closed(self, reason: str) -> None:
        self.queue.offline()
        await self._record(lambda s: s.closed(reason))

    async def banned(self, reason: str, until: datetime | None) -> None:
        self.queue.offline()
        await self._record(lambda s: s.banned(reason, until))

    async def message(self, message: InboundMessage) -> None:
        if message.kind == "reaction" and message.quoted_id:
            await self._on_target(
                message.quoted_id,
                lambda m: m.react(message.sender, message.text or "", message.sent_at or utcnow()),
            )
            return
        aggregate = Message.receive(
            self.ref.registry,
            self.ref.name,
            message.wa_id,
            chat=message.chat,
            sender=message.sender,
            from_me=message.from_me,
            kind=message.kind,
            text=message.text,
            push_name=message.push_name,
            mentions=list(message.mentions),
            quoted_id=message.quoted_id,
            sent_at=message.sent_at,
        )
        try:
            await self._store.save(aggregate)
        except ConcurrencyConflict:
            log.debug("session %s: duplicate delivery of %s dropped", self.ref.key, message.wa_id)
            return
        self._messages.remember(aggregate.id, aggregate)
        self._wa_index.remember(message.wa_id, aggregate.id)

    async def edited(self, chat: str, target_id: str, by: str, text: str, at: datetime) -> None:
        await self._on_target(target_id, lambda m: m.edit(text, at, by, enforce=False))

    async def revoked(self, chat: str, target_id: str, by: str, at: datetime) -> None:
        await self._on_target(target_id, lambda m: m.revoke(at, by, enforce=False))

    async def _on_target(self, wa_id: str, change: Callable[[Message], None]) -> None:
        """Applies a change reported by WhatsApp to a known message (unknown ones are skipped)."""
        for attempt in range(3):
            message = await self.message_by_wa_id(wa_id)
            if message is None:
                log.debug("session %s: action on unknown message %s ignored", self.ref.key, wa_id)
                return
            try:
                change(message)
            except DomainError as error:
                log.info("session %s: action on %s not applied: %s", self.ref.key, wa_id, error)
                self._messages.pop(message.id, None)
                return
            try:
                await self._store.save(message)
                return
            except ConcurrencyConflict:
                self._messages.pop(message.id, None)
                if attempt == 2:
                    raise

    async def message_by_wa_id(self, wa_id: str) -> Message | None:
        gate = self._inflight.get(wa_id)
        if gate is not None:
            await gate.wait()
        message_id = self._wa_index.get(wa_id) or await self._queries.message_for_wa_id(
            self.ref.registry, self.ref.name, wa_id
        )
        if message_id is None:
            return None
        self._wa_index.remember(wa_id, message_id)
        return await self._message(message_id)

    def forget_message(self, message_id: UUID) -> None:
        """Drops a cached aggregate (after a failed save its in-memory state is stale)."""
        self._messages.pop(message_id, None)

    async def receipt(self, receipt: Receipt) -> None:
        """Takes a receipt in; receipts are recorded in batches behind the engine, in order.

        One save per receipt cannot keep up with a busy session (two receipts per message
        sent, each a commit round trip): they queued up in memory without bound and were lost
        at shutdown. Now whatever arrives while a batch is being recorded goes in the next one,
        a single save of every message it moves."""
        self._receipts.append(receipt)
        if self._receipt_task is None or self._receipt_task.done():
            self._receipt_task = asyncio.create_task(self._record_receipts(), name=f"receipts-{self.ref.key}")

    async def _record_receipts(self) -> None:
        while self._receipts:
            batch = [self._receipts.popleft() for _ in range(min(len(self._receipts), RECEIPT_BATCH))]
            try:
                await self._apply_receipts(batch)
            except Exception:  # the next receipts must not wait behind a failed batch
                log.exception("session %s: %d receipts not recorded", self.ref.key, len(batch))

    async def _apply_receipts(self, batch: list[Receipt]) -> None:
        changed: dict[UUID, Message] = {}
        applied: list[tuple[UUID, Receipt]] = []
        for receipt in batch:
            status = MessageStatus(receipt.status)
            for wa_id in receipt.wa_ids:
                message = await self.message_by_wa_id(wa_id)  # waits for the Sent of an in-flight send
                if message is not None and message.apply_receipt(status, receipt.at, receipt.by):
                    changed[message.id] = message
                    applied.append((message.id, receipt))
        if not changed:
            return
        try:
            await self._store.save(*changed.values())
        except BaseException as error:
            for message_id in changed:
                self._messages.pop(message_id, None)
            if not isinstance(error, ConcurrencyConflict):
                raise
            for message_id, receipt in applied:  # one by one, from fresh state
                fresh = await self._message(message_id)
                if fresh is not None and fresh.apply_receipt(
                    MessageStatus(receipt.status), receipt.at, receipt.by
                ):
                    try:
                        await self._store.save(fresh)
                    except ConcurrencyConflict:
                        self._messages.pop(message_id, None)

    async def drain_receipts(self, timeout: float = 10.0) -> None:
        """Waits until the receipts taken in so far are recorded (at shutdown)."""
        task = self._receipt_task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)


def utcnow() -> datetime:
    return datetime.now(UTC)
