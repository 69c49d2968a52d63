"""Sending messages: record them as queued, hand them to the session's queue, report."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from warest.app.engine import EngineError, OutboundText
from warest.app.manager import SessionManager
from warest.app.outbound import QueueIsFull
from warest.app.ports import Clock, ConcurrencyConflict, EventStore
from warest.app.records import SessionRecord
from warest.app.runtime import Outgoing
from warest.domain import ids
from warest.domain.errors import DomainError, InvalidValue
from warest.domain.idempotency import IdempotencyRecord
from warest.domain.jid import Jid
from warest.domain.messages import Message, Status
from warest.domain.sessions import Session
from warest.domain.sessions import Status as SessionStatus

__all__ = ["IdempotencyMismatch", "MessagingService", "QueueIsFull", "SendOutcome", "SessionNotOpen"]

MAX_TEXT = 65536


class SessionNotOpen(DomainError):
    """The session exists but is not logged in and connected."""

    def __init__(self, status: str) -> None:
        super().__init__(f"session is {status}: log in (scan the QR or pair) first")
        self.status = status


class IdempotencyMismatch(DomainError):
    """An Idempotency-Key was reused for a different request."""


@dataclass(frozen=True)
class SendOutcome:
    to: str
    message_id: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class _Request:
    """One send request, as its messages are recorded."""

    registry: str
    session: str
    recipients: list[Jid]
    text: str
    mentions: list[str]
    reply_to: str | None
    idempotency_key: str | None

    def fingerprint(self) -> str:
        return _fingerprint(self.recipients, self.text, self.mentions, self.reply_to)

    def outbound(self, message: Message) -> OutboundText:
        return OutboundText(message.chat, message.wa_id, self.text, tuple(self.mentions), self.reply_to)


@dataclass(frozen=True)
class _Replay:
    """The request's Idempotency-Key was used before (``record``: its record, if found)."""

    record: IdempotencyRecord | None
    fingerprint: str


def new_wa_id() -> str:
    """A WhatsApp message id in whatsmeow's style (``3EB0`` + 18 upper-case hex digits),
    chosen before the message is queued: it is sent with it, every time it is sent."""
    return "3EB0" + secrets.token_hex(9).upper()


def _fingerprint(recipients: list[Jid], text: str, mentions: list[str], reply_to: str | None) -> str:
    """What makes two requests "the same" for an Idempotency-Key."""
    canonical = json.dumps([[str(j) for j in recipients], text, mentions, reply_to], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


IDEMPOTENCY_TTL = timedelta(hours=24)


class MessagingService:
    def __init__(
        self,
        store: EventStore,
        manager: SessionManager,
        send_wait_s: float,
        *,
        idempotency_ttl: timedelta = IDEMPOTENCY_TTL,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._manager = manager
        self._send_wait_s = send_wait_s
        self._idempotency_ttl = idempotency_ttl
        self._clock: Clock = clock or _UtcClock()

    async def send_text(
        self,
        record: SessionRecord,  # one of the caller's sessions (resolved by the caller)
        recipients: list[Jid],
        text: str,
        *,
        mentions: list[Jid] | None = None,
        reply_to: str | None = None,
        presence: bool = False,
        idempotency_key: str | None = None,
    ) -> list[SendOutcome]:
        if not text or not text.strip():
            raise InvalidValue("message", "must not be empty")
        if len(text) > MAX_TEXT:
            raise InvalidValue("message", f"must have at most {MAX_TEXT} characters")
        runtime = self._manager.get(record.registry, record.session_id)
        status = runtime.status if runtime else None
        if runtime is None or status != SessionStatus.OPEN:
            raise SessionNotOpen(str(status or record.status))
        request = _Request(
            record.registry,
            record.session_id,
            recipients,
            text,
            [str(j) for j in mentions or []],
            reply_to,
            idempotency_key,
        )
        replayed: list[SendOutcome] | None = None
        messages: list[Message] = []

        async def queue(account: Session) -> list[Outgoing]:
            nonlocal replayed
            stored = await self._record(request, account)
            if isinstance(stored, _Replay):
                replayed = await self._replay(stored.record, stored.fingerprint)
                return []
            messages.extend(stored)
            if presence:
                for jid in recipients:
                    with contextlib.suppress(EngineError):  # typing indicators are best effort
                        await runtime.connection.send_presence(str(jid), "composing")
            return [(message, request.outbound(message)) for message in stored]

        sending = await runtime.submit(len(recipients), queue)
        if replayed is not None:
            return replayed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._send_wait_s):
                for done in sending:  # awaited directly: asyncio.wait would add a turn of the loop
                    await done  # (cancelled on time-out: the message goes on, unawaited)
        return [_outcome(message) for message in messages]

    async def _record(self, request: _Request, account: Session) -> list[Message] | _Replay:
        """Stores the request's messages as queued from ``account``, with its Idempotency-Key
        if it has one; a key used before answers with that request's messages instead."""
        incarnation = account.incarnation
        key = request.idempotency_key
        fingerprint = request.fingerprint() if key is not None else ""
        renew: IdempotencyRecord | None = None
        for attempt in range(3):  # a save's events are gone after a conflict: built afresh
            messages = [
                Message.queue(
                    request.registry,
                    request.session,
                    str(jid),
                    new_wa_id(),
                    request.text,
                    request.mentions,
                    request.reply_to,
                    key,
                    sender=account.me_jid,
                    incarnation=incarnation,
                )
                for jid in request.recipients
            ]
            record = None
            if key is not None:
                message_ids = [m.id for m in messages]
                if renew is not None:
                    renew.renew(fingerprint, message_ids, self._clock.now())
                    record = renew
                else:
                    record = IdempotencyRecord.record(
                        request.registry,
                        request.session,
                        key,
                        fingerprint,
                        message_ids,
                        incarnation,
                        self._clock.now(),
                    )
            try:
                await self._store.save(*messages, *([record] if record is not None else []))
                return messages
            except ConcurrencyConflict:
                if key is None or attempt == 2:
                    raise
            # The key was used before: replay that request, unless its record expired.
            renew = await self._store.get(
                ids.idempotency_id(request.registry, request.session, key, incarnation)
            )
            if renew is None or not renew.expired(self._clock.now(), self._idempotency_ttl):
                return _Replay(renew, fingerprint)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _replay(self, record: IdempotencyRecord | None, fingerprint: str) -> list[SendOutcome]:
        """The same Idempotency-Key again: the first request's messages, once settled."""
        if record is None or record.fingerprint != fingerprint:
            raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
        deadline = asyncio.get_running_loop().time() + self._send_wait_s
        while True:
            stored = [await self._store.get(message_uuid) for message_uuid in record.message_ids]
            if any(m is None for m in stored):
                raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
            messages: list[Message] = [m for m in stored if m is not None]
            if all(not m.pending for m in messages) or asyncio.get_running_loop().time() > deadline:
                return [_outcome(m) for m in messages]
            await asyncio.sleep(0.05)


def _outcome(message: Message) -> SendOutcome:
    status = message.status
    return SendOutcome(
        to=message.chat,
        message_id=message.wa_id,
        status=str(status),
        error=message.failure if status == Status.FAILED else None,
    )
