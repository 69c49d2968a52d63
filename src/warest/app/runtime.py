"""Running sessions: one runtime per session links an engine connection to the domain.

A runtime is the engine's listener: every happening it reports becomes an event on the
Session or Message aggregates. It owns the session's outbound queue and keeps the
Session aggregate in memory (reloading it after a concurrency conflict).

What WhatsApp reported cannot be asked for again, so its saves are retried until stored
(``_until_stored``: back-off, no give-up; the engine's inbox waits meanwhile, which holds
the engine back). Ids of received messages are deterministic and lifecycle and receipt
changes are re-applied to fresh state, so a retry after a save whose outcome was unknown
finds "already stored" (a conflict, or nothing left to change) rather than a duplicate.

Outages: the engine reports every reconnect attempt; the runtime records the loss once
(``Session.ConnectionLost``), ``Session.Suspended`` once the outage has lasted
``suspend_after_s``, and ``Session.Opened`` when the link is back. Attempts, the outage's
start and the next retry are live status (``outage``), shown by ``session/info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, assert_never
from uuid import UUID

from warest.app.engine import Connection, Engine, EngineError, OutboundText, SendResult, SessionRef
from warest.app.happenings import (
    Banned,
    Closed,
    Connecting,
    Edited,
    Happening,
    LoggedOut,
    Me,
    Opened,
    PairingCodeShown,
    QrShown,
    Receipt,
    Received,
    Reconnecting,
    Replaced,
    Revoked,
)
from warest.app.outbound import Job, OutboundQueue, QueueIsFull, RetryPolicy
from warest.app.ports import ConcurrencyConflict, EventStore, LoginQrs, MessagingQueries
from warest.domain import ids
from warest.domain.claims import Claim
from warest.domain.errors import DomainError, NotFound, SessionNotFound
from warest.domain.messages import Message
from warest.domain.messages import Status as MessageStatus
from warest.domain.sessions import Session, Status

log = logging.getLogger("warest.runtime")

RECEIPT_BATCH = 2000
WA_ID_CLAIM = "WhatsApp message id"

Outgoing = tuple[Message, OutboundText]
"""A message recorded as queued, and what the engine sends for it."""


@dataclass(frozen=True)
class LifecycleSettings:
    """``suspend_after_s``: how long an outage lasts before the session is recorded as
    suspended. ``store_retry_*``: the back-off of saves of what WhatsApp reported.
    ``receipt_backlog``: receipts waiting to be recorded before the engine is held back."""

    suspend_after_s: float = 300.0
    store_retry_base_s: float = 0.1
    store_retry_max_s: float = 5.0
    receipt_backlog: int = 10_000


@dataclass(frozen=True)
class Outage:
    """The live state of a lost connection (not an event: it changes at every attempt)."""

    since: datetime
    reason: str
    attempts: int
    next_retry_at: datetime | None
    suspended: bool = False


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
        lifecycle: LifecycleSettings | None = None,
        *,
        login_qrs: LoginQrs | None = None,
    ) -> None:
        self.ref = ref
        self._settings = lifecycle or LifecycleSettings()
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
        self._receipt_room = asyncio.Event()
        self.outage: Outage | None = None
        self._suspend_timer: asyncio.TimerHandle | None = None
        self._suspending: asyncio.Task[None] | None = None
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

    async def _until_stored(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        """Runs ``attempt`` (a save of something WhatsApp reported) until it succeeds.

        Each attempt starts again from the report (fresh aggregates), so a failed save
        leaves nothing half-applied. Domain refusals are not retried: they will not change.
        Cancellation (the connection closing) ends the retries."""
        delay = self._settings.store_retry_base_s
        failures = 0
        while True:
            try:
                await attempt()
            except DomainError:
                raise
            except Exception as error:
                failures += 1
                log.warning(
                    "session %s: %s not stored (attempt %d: %s); retrying in %.1f s",
                    self.ref.key, what, failures, error or type(error).__name__, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.store_retry_max_s)
                continue
            if failures:
                log.info("session %s: %s stored after %d failed attempts", self.ref.key, what, failures)
            return

    async def _record_reported(self, what: str, change: Callable[[Session], None]) -> None:
        """``_record`` for a lifecycle change the engine reported: retried until stored."""
        await self._until_stored(what, lambda: self._record(change))

    # -- commands from the application ----------------------------------------

    async def start(self, pair_phone: str | None = None) -> None:
        self.current_qr = None
        self.current_pairing_code = None
        await self.connection.start(pair_phone)

    async def stop(self, reason: str) -> None:
        self._went_offline()
        await self.connection.stop()
        await self._record(lambda s: s.closed(reason))

    async def logout(self) -> None:
        self._went_offline()
        await self.connection.logout()
        await self._record(lambda s: s.logged_out("logged out through the API"))
        await self.fail_pending("the session was logged out")

    async def shutdown(self) -> None:
        """Process shutdown: disconnect without recording anything (the session resumes)."""
        self._went_offline()
        if self._suspending is not None:
            self._suspending.cancel()
        await self.queue.close()
        try:
            await self.connection.stop()
        except EngineError:
            log.warning("session %s did not stop cleanly", self.ref.key)
        await self.drain_receipts()

    async def resume_pending(self, me: str | None = None) -> int:
        """Queues the outbound messages recorded as queued but not yet sent (after a restart).

        A message leaves from the account and the incarnation of the session it was queued
        in, or not at all: one queued before the session was deleted, or from another number
        than ``me`` (a logout, then a crash before the queued messages were failed, then a
        login with another phone), is recorded as failed instead."""
        session = await self._current()
        added = 0
        for pending in await self._queries.pending_outbound(self.ref.registry, self.ref.name):
            if session is not None and await self._refused(pending.message_id, session, me):
                continue
            text = OutboundText(
                to=pending.chat,
                wa_id=pending.local_id,  # the id it was queued with: a re-send is the same message
                text=pending.text or "",
                mentions=tuple(pending.mentions),
                reply_to=pending.reply_to,
            )
            if self.queue.put(Job(pending.message_id, text)):
                added += 1
        if added:
            log.info("session %s: %d pending outbound messages re-queued", self.ref.key, added)
        return added

    async def _refused(self, message_id: UUID, session: Session, me: str | None) -> bool:
        message = await self._message(message_id)
        if message is None or not message.pending:
            return False
        if max(message.incarnation, 1) != max(session.incarnation, 1):
            reason, code = "queued before the session was deleted", "session_ended"
        elif me is not None and message.sender is not None and _user(message.sender) != _user(me):
            reason = f"queued from {_user(message.sender)}, but the session is now logged in as {_user(me)}"
            code = "sender_changed"
        else:
            return False
        message.mark_failed(reason, code, message.attempts)
        with contextlib.suppress(ConcurrencyConflict):
            await self._save(message)
        return True

    async def fail_pending(self, reason: str) -> int:
        """Gives up every queued message: the account they were queued for is gone."""
        failed = 0
        for pending in await self._queries.pending_outbound(self.ref.registry, self.ref.name):
            message = await self._message(pending.message_id)
            if message is None or not message.pending:
                continue
            message.mark_failed(reason, "session_ended", message.attempts)
            try:
                await self._save(message)
                failed += 1
            except ConcurrencyConflict:
                pass
        return failed

    # -- outbound --------------------------------------------------------------

    async def submit(
        self, count: int, record: Callable[[Session], Awaitable[Sequence[Outgoing]]]
    ) -> list[asyncio.Future[None]]:
        """Sends up to ``count`` messages: reserves room for them in the queue (``QueueIsFull``
        otherwise), lets ``record`` store them as queued from the session's account (it gets
        the Session: this incarnation, this JID), then queues what it recorded, in order. The
        room ``record`` did not use (a replay, a failure) is released whatever happens.
        Returns one future per queued message, done once its outcome is recorded."""
        if not self.queue.reserve(count):
            raise QueueIsFull(f"the outbound queue of '{self.ref.name}' is full; retry later")
        reserved = count
        try:
            outgoing = await record(await self.session())
            done = []
            for message, text in outgoing:
                self.remember(message)
                job = Job(message.id, text)
                self.queue.put(job, reserved=True)
                reserved -= 1
                done.append(job.done)
            return done
        finally:
            self.queue.release(reserved)

    async def _send(self, text: OutboundText) -> SendResult:
        gate = asyncio.Event()
        self._inflight[text.wa_id] = gate
        try:
            result = await self.connection.send_text(text)
            self._inflight[result.wa_id] = gate
            return result
        except BaseException:
            gate.set()
            self._inflight.pop(text.wa_id, None)
            raise

    async def _record_outcome(
        self, job: Job, result: SendResult | None, error: EngineError | None, attempts: int
    ) -> None:
        """Records ``Sent`` or ``SendFailed``. An id the engine chose instead of the queued one
        is claimed for the message in the same save, so the id always leads to the message
        through the event store. If the save fails the message stays pending: it is sent
        again (with its queued id) at the next start, or a receipt records its ``Sent``."""
        claim_id = None
        try:
            for attempt in range(3):
                message = await self._message(job.message_id)
                if message is None or not message.pending:
                    return  # recorded already (e.g. by another process before a restart)
                if result is not None and result.wa_id != job.text.wa_id:
                    claim_id = ids.wa_id_claim_id(
                        self.ref.registry, self.ref.name, result.wa_id, message.incarnation
                    )
                claims: list[Claim] = []
                if result is not None:
                    message.mark_sent(result.wa_id, result.sent_at, attempts)
                    if claim_id is not None and (attempt == 0 or await self._store.get(claim_id) is None):
                        claims.append(Claim.claim(claim_id, WA_ID_CLAIM, result.wa_id, message.id))
                else:
                    assert error is not None
                    message.mark_failed(str(error), error.code, attempts)
                try:
                    await self._save(message, *claims)
                except ConcurrencyConflict:
                    if attempt == 2:
                        raise
                    continue
                if result is not None:
                    self._index(result.wa_id, job.message_id)
                return
        finally:
            for key in (job.text.wa_id, result.wa_id if result else None):
                gate = self._inflight.pop(key, None) if key else None
                if gate is not None:
                    gate.set()

    async def _save(self, message: Message, *others: Any) -> None:
        """Saves ``message`` (with ``others`` in the same transaction) and keeps it in memory;
        after any failure it is dropped from memory, since its unsaved changes must not be
        built on (a later save would write a stream with a hole)."""
        try:
            await self._store.save(message, *others)
        except BaseException:
            self._messages.pop(message.id, None)
            raise
        self._messages.remember(message.id, message)

    def remember(self, message: Message) -> None:
        """Keeps a just-queued message in memory (its receipts will find it without a read)."""
        self._messages.remember(message.id, message)
        self._index(message.wa_id, message.id)

    def _index(self, wa_id: str, message_id: UUID) -> None:
        """Remembers that ``wa_id`` names ``message_id`` (one id may name messages of
        several chats: the newest last)."""
        known: list[UUID] | None = self._wa_index.get(wa_id)
        if known is None:
            self._wa_index.remember(wa_id, [message_id])
        else:
            if message_id not in known:
                known.append(message_id)
                del known[:-4]
            self._wa_index.move_to_end(wa_id)

    async def _message(self, message_id: UUID) -> Message | None:
        message: Message | None = self._messages.get(message_id)
        if message is None:
            message = await self._store.get(message_id)
            if message is not None:
                self._messages.remember(message_id, message)
        return message

    # -- what the engine reports -------------------------------------------------

    async def on(self, happening: Happening) -> None:
        """The engine's listener: records what ``happening`` says (see the module)."""
        match happening:
            case QrShown(qr=qr, duration_s=duration_s, attempt=attempt):
                await self._qr_shown(qr, duration_s, attempt)
            case PairingCodeShown(code=code, phone=phone):
                await self._pairing_code_shown(code, phone)
            case Connecting():
                await self._record_reported("connecting", lambda s: s.connecting())
            case Opened(me=me):
                await self._opened(me)
            case Reconnecting(attempt=attempt, reason=reason, retry_in_s=retry_in_s):
                await self._reconnecting(attempt, reason, retry_in_s)
            case LoggedOut(reason=reason):
                self._went_offline()
                await self._record_reported("the logout", lambda s: s.logged_out(reason))
                await self.fail_pending("the session was logged out")
                self._on_closed(self)
            case Replaced(reason=reason):
                self._went_offline()
                await self._record_reported("the replacement", lambda s: s.replaced(reason))
                self._on_closed(self)
            case Closed(reason=reason):
                self._went_offline()
                await self._record_reported("the close", lambda s: s.closed(reason))
            case Banned(reason=reason, until=until):
                self._went_offline()
                await self._record_reported("the ban", lambda s: s.banned(reason, until))
            case Received():
                await self._received(happening)
            case Receipt():
                await self._receipt(happening)
            case Edited(chat=chat, target_id=target_id, by=by, text=text, at=at):
                await self._on_target(target_id, chat, lambda m: m.edit(text, at, by, enforce=False))
            case Revoked(chat=chat, target_id=target_id, by=by, at=at):
                await self._on_target(target_id, chat, lambda m: m.revoke(at, by, enforce=False))
            case _:
                assert_never(happening)

    async def _qr_shown(self, qr: str, duration_s: int, attempt: int) -> None:
        self.current_qr = QrCode(qr, duration_s, time.monotonic())
        # The QR string stays out of the log: the event says that a QR was shown; the
        # webhook outbox finds the string here.
        if self._login_qrs is not None:
            await self._login_qrs.put(ids.session_id(self.ref.registry, self.ref.name), attempt, qr)
        await self._record_reported("a QR", lambda s: s.issue_qr(duration_s, attempt))

    async def _pairing_code_shown(self, code: str, phone: str) -> None:
        self.current_pairing_code = code
        # Like the QR, the code stays out of the log; the webhook outbox finds it here.
        if self._login_qrs is not None:
            session_id = ids.session_id(self.ref.registry, self.ref.name)
            await self._login_qrs.put_pairing_code(session_id, phone, code, utcnow())
        await self._record_reported("a pairing code", lambda s: s.issue_pairing_code(phone))

    async def _opened(self, me: Me) -> None:
        self.current_qr = None
        self.current_pairing_code = None
        self._end_outage()
        await self._record_reported("the login", lambda s: s.opened(me.jid, me.lid, me.push_name))
        await self.resume_pending(me.jid)
        self.queue.online()

    async def _reconnecting(self, attempt: int, reason: str, retry_in_s: float | None) -> None:
        self.queue.offline()
        now = utcnow()
        retry_at = now + timedelta(seconds=retry_in_s) if retry_in_s is not None else None
        outage = self.outage
        if outage is None:
            self.outage = Outage(since=now, reason=reason, attempts=attempt, next_retry_at=retry_at)
            self._arm_suspension()
        else:
            self.outage = replace(outage, attempts=attempt, next_retry_at=retry_at)
        await self._record_reported("the lost connection", lambda s: s.reconnecting(attempt, reason))

    def _went_offline(self) -> None:
        """The link ended (not an outage): nothing leaves until it opens again."""
        self.queue.offline()
        self._end_outage()

    # -- outages ---------------------------------------------------------------

    def _arm_suspension(self) -> None:
        self._cancel_suspension()
        loop = asyncio.get_running_loop()
        self._suspend_timer = loop.call_later(self._settings.suspend_after_s, self._suspend)

    def _suspend(self) -> None:
        self._suspend_timer = None
        outage = self.outage
        if outage is None or outage.suspended:
            return
        self.outage = replace(outage, suspended=True)
        self._suspending = asyncio.create_task(
            self._record_reported("the suspension", lambda s: s.suspended(outage.reason, outage.since)),
            name=f"suspend-{self.ref.key}",
        )

    def _cancel_suspension(self) -> None:
        if self._suspend_timer is not None:
            self._suspend_timer.cancel()
            self._suspend_timer = None

    def _end_outage(self) -> None:
        self.outage = None
        self._cancel_suspension()

    async def _received(self, message: Received) -> None:
        if message.kind == "reaction" and message.quoted_id:
            await self._on_target(
                message.quoted_id,
                message.chat,
                lambda m: m.react(message.sender, message.text or "", message.sent_at or utcnow()),
            )
            return
        await self._until_stored(f"message {message.wa_id}", lambda: self._receive(message))

    async def _receive(self, message: Received) -> None:
        session = await self._current()
        if session is None:
            return
        aggregate = Message.receive(
            self.ref.registry,
            self.ref.name,
            message.wa_id,
            incarnation=session.incarnation,
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
        except ConcurrencyConflict:  # its id is derived from the WhatsApp id: stored already
            log.debug("session %s: duplicate delivery of %s dropped", self.ref.key, message.wa_id)
            return
        self._messages.remember(aggregate.id, aggregate)
        self._index(message.wa_id, aggregate.id)

    async def _on_target(self, wa_id: str, chat: str, change: Callable[[Message], None]) -> None:
        """Applies a change reported by WhatsApp to a known message (unknown ones are skipped)."""
        await self._until_stored(
            f"a change of {wa_id}", lambda: self._apply_to_target(wa_id, chat, change)
        )

    async def _apply_to_target(self, wa_id: str, chat: str, change: Callable[[Message], None]) -> None:
        for attempt in range(3):
            message = await self.message_by_wa_id(wa_id, chat)
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
                await self._save(message)
                return
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
            except BaseException:
                self._messages.pop(message.id, None)  # its in-memory state is not what is stored
                raise

    async def message_by_wa_id(
        self, wa_id: str, chat: str | None = None, from_me: bool | None = None
    ) -> Message | None:
        """The message WhatsApp knows as ``wa_id`` (in ``chat``, and sent by this account or
        not, when they are known: WhatsApp's key of a message), from memory or the event store
        (never a read model, which may be behind); waits for the outcome of a send in flight."""
        gate = self._inflight.get(wa_id)
        if gate is not None:
            await gate.wait()
        known: list[UUID] = list(self._wa_index.get(wa_id) or ())
        for message_id in reversed(known):
            message = await self._message(message_id)
            if message is not None and _is_key(message, chat, from_me):
                return message
        found = await self._message_id_of(wa_id, chat, from_me)
        if found is None:
            if not known:
                return None
            found = known[-1]  # in memory, though in another chat (e.g. a LID for a phone number)
        self._index(wa_id, found)
        return await self._message(found)

    async def _message_id_of(self, wa_id: str, chat: str | None, from_me: bool | None) -> UUID | None:
        """Messages are keyed by (chat, from me, id): with the chat known, the id is derived.
        Otherwise, and for messages recorded before that key, by the id alone: the old key
        (registry, session, id), the claim of an id an engine chose itself (stored with the
        message's ``Sent``), then, for messages sent by the neonize engine before such claims
        existed, ``rm_message_index`` (long caught up with them), the one lookup left to a read
        model. What these find must belong to this incarnation of the session."""
        session = await self._current()
        if session is None:
            return None
        registry, name, incarnation = self.ref.registry, self.ref.name, session.incarnation
        if chat is not None:
            for mine in (from_me,) if from_me is not None else (True, False):
                derived = ids.message_id(registry, name, chat, mine, wa_id, incarnation)
                if await self._message(derived) is not None:
                    return derived
        candidates: list[UUID | None] = [ids.legacy_message_id(registry, name, wa_id)]
        for claim_id in {ids.wa_id_claim_id(registry, name, wa_id, n) for n in (1, incarnation)}:
            claim: Claim | None = await self._store.get(claim_id)
            if claim is not None and claim.owner_id is not None:
                candidates.append(claim.owner_id)
        candidates.append(await self._queries.message_for_wa_id(registry, name, wa_id))
        for candidate in candidates:
            if candidate is None:
                continue
            message = await self._message(candidate)
            if message is not None and message.created_on >= session.created_on:
                return candidate
        return None

    async def _current(self) -> Session | None:
        """The session (for its incarnation), or None once it is deleted."""
        try:
            return await self.session()
        except SessionNotFound:
            log.info("session %s is gone; ignoring an engine report", self.ref.key)
            return None

    def forget_message(self, message_id: UUID) -> None:
        """Drops a cached aggregate (after a failed save its in-memory state is stale)."""
        self._messages.pop(message_id, None)

    async def _receipt(self, receipt: Receipt) -> None:
        """Takes a receipt in; receipts are recorded in batches behind the engine, in order.

        One save per receipt cannot keep up with a busy session (two receipts per message
        sent, each a commit round trip). Whatever arrives while a batch is being recorded
        goes in the next one, a single save of every message it moves. A failed batch is
        retried until stored; meanwhile at most ``receipt_backlog`` receipts wait, and the
        engine's next receipt waits for room (it is held back, nothing is dropped)."""
        while len(self._receipts) >= self._settings.receipt_backlog:
            self._receipt_room.clear()
            self._ensure_receipt_task()
            await self._receipt_room.wait()
        self._receipts.append(receipt)
        self._ensure_receipt_task()

    def _ensure_receipt_task(self) -> None:
        if self._receipt_task is None or self._receipt_task.done():
            self._receipt_task = asyncio.create_task(self._record_receipts(), name=f"receipts-{self.ref.key}")

    async def _record_receipts(self) -> None:
        while self._receipts:
            batch = [self._receipts.popleft() for _ in range(min(len(self._receipts), RECEIPT_BATCH))]
            self._receipt_room.set()
            await self._until_stored(f"{len(batch)} receipts", partial(self._apply_receipts, batch))

    async def _apply_receipts(self, batch: list[Receipt]) -> None:
        changed: dict[UUID, Message] = {}
        applied: list[tuple[UUID, Receipt]] = []
        for receipt in batch:
            status = MessageStatus(receipt.status)
            for wa_id in receipt.wa_ids:
                # About this account's messages (engines pass on no others); waits for the
                # Sent of an in-flight send.
                message = await self.message_by_wa_id(wa_id, receipt.chat, True)
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


def _user(jid: str) -> str:
    """The account of a JID: its user part, without device or agent."""
    return jid.split("@", 1)[0].split(":", 1)[0].split(".", 1)[0]


def _is_key(message: Message, chat: str | None, from_me: bool | None) -> bool:
    return (chat is None or message.chat == chat) and (from_me is None or message.own == from_me)
