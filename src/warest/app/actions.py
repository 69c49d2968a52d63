"""Message and chat actions: each is a command that calls the engine and records an event.

WhatsApp's rules are enforced before anything is sent (only your own messages can be
edited or deleted for everyone, within WhatsApp's time windows); local-only actions
(star, delete for me, mute, archive, pin, clear) are recorded without an engine call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from warest.app.commands import retry_on_conflict
from warest.app.engine import EngineError, MessageRef
from warest.app.manager import SessionManager
from warest.app.messaging import SessionNotOpen
from warest.app.ports import ConcurrencyConflict, EventStore
from warest.app.records import Principal, SessionRecord
from warest.app.runtime import SessionRuntime
from warest.app.sessions import SessionService
from warest.domain import ids
from warest.domain.chats import Chat
from warest.domain.errors import InvalidValue, NotFound
from warest.domain.jid import Jid
from warest.domain.messages import Message
from warest.domain.sessions import Session, Status

T = TypeVar("T")


class EngineRefused(Exception):
    """WhatsApp (the engine) refused the action."""

    def __init__(self, action: str, error: EngineError) -> None:
        super().__init__(f"{action} failed: {error}")
        self.action = action
        self.error = error


SAVE_ATTEMPTS = 5
"""Saves of a message action, the first included: after the engine call they record what
WhatsApp already shows, so they try a little harder than a command's three."""

CHAT_STATES = ("composing", "recording", "paused")
PRESENCE_STATES = ("available", "unavailable", *CHAT_STATES)


def _now() -> datetime:
    return datetime.now(UTC)


class ActionService:
    def __init__(self, store: EventStore, sessions: SessionService, manager: SessionManager) -> None:
        self._store = store
        self._sessions = sessions
        self._manager = manager

    # -- message actions ----------------------------------------------------------

    async def react(
        self, owner: Principal, session: str, wa_id: str, emoji: str, *, chat: str | None = None
    ) -> Message:
        runtime, me = await self._open(owner, session)
        at = _now()
        return await self._on_message(
            runtime,
            wa_id,
            lambda message: message.react(me, emoji, at),
            ("reaction", lambda message: runtime.connection.send_reaction(_ref(message, me), emoji)),
            chat=chat,
        )

    async def edit(
        self, owner: Principal, session: str, wa_id: str, text: str, *, chat: str | None = None
    ) -> Message:
        runtime, me = await self._open(owner, session)
        at = _now()
        return await self._on_message(
            runtime,
            wa_id,
            lambda message: message.edit(text, at, me),
            ("edit", lambda message: runtime.connection.send_edit(_ref(message, me), text)),
            chat=chat,
        )

    async def revoke(self, owner: Principal, session: str, wa_id: str, *, chat: str | None = None) -> Message:
        runtime, me = await self._open(owner, session)
        at = _now()
        return await self._on_message(
            runtime,
            wa_id,
            lambda message: message.revoke(at, me),
            ("revoke", lambda message: runtime.connection.send_revoke(_ref(message, me))),
            chat=chat,
        )

    async def star(
        self, owner: Principal, session: str, wa_id: str, starred: bool, *, chat: str | None = None
    ) -> Message:
        runtime = await self._runtime(owner, session)
        return await self._on_message(runtime, wa_id, lambda message: message.star(starred), chat=chat)

    async def pin(
        self, owner: Principal, session: str, wa_id: str, duration: str | None, *, chat: str | None = None
    ) -> Message:
        runtime = await self._runtime(owner, session)
        at = _now()
        return await self._on_message(runtime, wa_id, lambda message: message.pin(duration, at), chat=chat)

    async def delete_for_me(
        self, owner: Principal, session: str, wa_id: str, *, chat: str | None = None
    ) -> Message:
        runtime = await self._runtime(owner, session)
        return await self._on_message(runtime, wa_id, lambda message: message.delete_for_me(), chat=chat)

    async def mark_read(self, owner: Principal, session: str, chat: Jid, wa_ids: list[str]) -> list[str]:
        """Sends read receipts for ``wa_ids`` (received messages of ``chat``) and marks the chat read."""
        runtime, _ = await self._open(owner, session)
        refs = []
        for wa_id in wa_ids:
            message = await runtime.message_by_wa_id(wa_id, str(chat), False)
            if message is not None and not message.own and message.chat == str(chat):
                refs.append(MessageRef(message.chat, message.wa_id, _sender(message), False))
        if not refs:  # nothing known to mark: record nothing (no chat appears from a bad id)
            return []
        await self._engine("read", runtime.connection.mark_read(str(chat), tuple(refs)))
        record = await self._sessions.get(owner, session)
        await self._chat(record, chat, lambda c: c.mark_read(_now(), [r.wa_id for r in refs]))
        return [r.wa_id for r in refs]

    async def presence(self, owner: Principal, session: str, state: str, to: Jid | None) -> None:
        """Typing indicators (composing, recording, paused) to a chat; available and
        unavailable are the account's own presence."""
        if state not in PRESENCE_STATES:
            raise InvalidValue("state", f"must be one of {', '.join(PRESENCE_STATES)}")
        runtime, _ = await self._open(owner, session)
        if to is None and state in CHAT_STATES:
            raise InvalidValue("to", f"is required for '{state}'")
        await self._engine("presence", runtime.connection.send_presence(str(to) if to else "", state))

    # -- chat actions ---------------------------------------------------------------

    async def chat_action(
        self, owner: Principal, session: str, chat: Jid, change: Callable[[Chat], None]
    ) -> Chat:
        record = await self._sessions.get(owner, session)
        return await self._chat(record, chat, change)

    # -- helpers ----------------------------------------------------------------------

    async def _runtime(self, owner: Principal, session: str) -> SessionRuntime:
        record = await self._sessions.get(owner, session)
        return self._manager.runtime(record)

    async def _open(self, owner: Principal, session: str) -> tuple[SessionRuntime, str]:
        record = await self._sessions.get(owner, session)
        runtime = self._manager.get(record.registry, record.session_id)
        if runtime is None or runtime.status != Status.OPEN:
            raise SessionNotOpen(str(runtime.status if runtime else record.status))
        aggregate = await runtime.session()
        return runtime, aggregate.me_jid or ""

    async def _on_message(
        self,
        runtime: SessionRuntime,
        wa_id: str,
        change: Callable[[Message], None],
        engine: tuple[str, Callable[[Message], Awaitable[None]]] | None = None,
        chat: str | None = None,
    ) -> Message:
        """Applies ``change`` to the message and saves it; ``engine`` (the action's name and
        its call) tells WhatsApp first, once; ``chat``, when the caller names it, picks the
        message among those of one WhatsApp id.

        The change runs before the call, so WhatsApp's rules (own message, time windows)
        refuse an action before anything is sent. It is made on a copy of the message of this
        action's own: the runtime's cached one is shared with the receipts it records, whose
        save would otherwise carry the change before WhatsApp has answered. A version conflict
        on the save (receipts land on the same message stream) reloads the message and
        re-applies only the change: WhatsApp already has the action and must not get it twice.
        """
        sent = False

        async def attempt() -> Message:
            nonlocal sent
            known = await runtime.message_by_wa_id(wa_id, chat)
            message: Message | None = None if known is None else await self._store.get(known.id)
            if message is None:
                raise NotFound(f"message '{wa_id}' not found")
            change(message)
            if engine is not None and not sent:
                action, call = engine
                await self._engine(action, call(message))
                sent = True
            await self._store.save(message)
            runtime.remember(message)  # the cached copy lacks the change
            return message

        return await retry_on_conflict(attempt, attempts=SAVE_ATTEMPTS)

    async def _engine(self, action: str, call: Awaitable[None]) -> None:
        try:
            await call
        except EngineError as error:
            raise EngineRefused(action, error) from error

    async def _chat(self, record: SessionRecord, jid: Jid, change: Callable[[Chat], None]) -> Chat:
        session: Session | None = await self._store.get(ids.session_id(record.registry, record.session_id))
        incarnation = session.incarnation if session is not None else 1  # a chat is the incarnation's
        for attempt in range(3):
            chat: Chat | None = await self._store.get(
                ids.chat_id(record.registry, record.session_id, str(jid), incarnation)
            )
            if chat is None:
                chat = Chat.start(record.registry, record.session_id, str(jid), incarnation)
            change(chat)
            try:
                await self._store.save(chat)
                return chat
            except ConcurrencyConflict:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _sender(message: Message) -> str:
    return message.sender or message.chat


def _ref(message: Message, me: str) -> MessageRef:
    return MessageRef(message.chat, message.wa_id, me if message.own else _sender(message), message.own)
