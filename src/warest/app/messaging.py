"""Sending messages: record them as queued, hand them to the session's queue, report."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from dataclasses import dataclass

from warest.app.engine import EngineError, OutboundText
from warest.app.manager import SessionManager
from warest.app.outbound import Job
from warest.app.ports import ConcurrencyConflict, EventStore
from warest.app.records import Principal
from warest.app.sessions import SessionService
from warest.domain.errors import DomainError, InvalidValue
from warest.domain.jid import Jid
from warest.domain.messages import Message, Status, message_id
from warest.domain.sessions import Status as SessionStatus

MAX_TEXT = 65536


class SessionNotOpen(DomainError):
    """The session exists but is not logged in and connected."""

    def __init__(self, status: str) -> None:
        super().__init__(f"session is {status}: log in (scan the QR or pair) first")
        self.status = status


class QueueIsFull(DomainError):
    """The session's outbound queue is at its configured size."""


class IdempotencyMismatch(DomainError):
    """An Idempotency-Key was reused for a different request."""


@dataclass(frozen=True)
class SendOutcome:
    to: str
    message_id: str
    status: str
    error: str | None = None


def new_local_id(registry: str, session: str, idempotency_key: str | None, to: str) -> str:
    """A WhatsApp-style id: random, or derived from the Idempotency-Key (same key, same id)."""
    if idempotency_key is None:
        return "3EB0" + secrets.token_hex(9).upper()
    digest = hashlib.sha256(f"{registry}\x1f{session}\x1f{idempotency_key}\x1f{to}".encode()).hexdigest()
    return "3EB0" + digest[:18].upper()


class MessagingService:
    def __init__(
        self, store: EventStore, sessions: SessionService, manager: SessionManager, send_wait_s: float
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._manager = manager
        self._send_wait_s = send_wait_s

    async def send_text(
        self,
        owner: Principal,
        session_name: str,
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
        record = await self._sessions.get(owner, session_name)
        runtime = self._manager.get(record.registry, record.session_id)
        status = runtime.status if runtime else None
        if runtime is None or status != SessionStatus.OPEN:
            raise SessionNotOpen(str(status or record.status))
        if not runtime.queue.has_room(len(recipients)):
            raise QueueIsFull(f"the outbound queue of '{session_name}' is full; retry later")
        mention_list = [str(j) for j in mentions or []]
        messages = [
            Message.queue(
                record.registry,
                record.session_id,
                str(jid),
                new_local_id(record.registry, record.session_id, idempotency_key, str(jid)),
                text,
                mention_list,
                reply_to,
                idempotency_key,
            )
            for jid in recipients
        ]
        try:
            await self._store.save(*messages)
        except ConcurrencyConflict:
            if idempotency_key is None:
                raise
            return await self._replay(record.registry, record.session_id, messages)
        if presence:
            for jid in recipients:
                with contextlib.suppress(EngineError):  # typing indicators are best effort
                    await runtime.connection.send_presence(str(jid), "composing")
        jobs = []
        for message in messages:
            runtime.remember(message)
            job = Job(
                message.id,
                OutboundText(str(message.chat), message.wa_id, text, tuple(mention_list), reply_to),
            )
            runtime.queue.put(job)
            jobs.append(job)
        await asyncio.wait([j.done for j in jobs], timeout=self._send_wait_s)
        return [_outcome(message) for message in messages]

    async def _replay(self, registry: str, session: str, fresh: list[Message]) -> list[SendOutcome]:
        """The same Idempotency-Key again: the first request's messages, once settled."""
        deadline = asyncio.get_running_loop().time() + self._send_wait_s
        while True:
            stored: list[Message] = []
            for candidate in fresh:
                existing: Message | None = await self._store.get(
                    message_id(registry, session, candidate.wa_id)
                )
                if existing is None or (existing.chat, existing.text) != (candidate.chat, candidate.text):
                    raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
                stored.append(existing)
            if all(not m.pending for m in stored) or asyncio.get_running_loop().time() > deadline:
                return [_outcome(m) for m in stored]
            await asyncio.sleep(0.05)


def _outcome(message: Message) -> SendOutcome:
    status = message.status
    return SendOutcome(
        to=message.chat,
        message_id=message.wa_id,
        status=str(status),
        error=message.failure if status == Status.FAILED else None,
    )
