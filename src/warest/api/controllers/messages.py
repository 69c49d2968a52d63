"""``/api/v1/messages/send/*``: sending through one of the caller's sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from litestar import Controller, Request, Response, post, route
from litestar.params import FromPath, JSONBody

from warest.api.codes import Code
from warest.api.dependencies import Actions, AppSettings, Messaging, Sessions
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.middleware import set_label
from warest.api.params import MESSAGE_ID_MAX, NAME_MAX, Body, invalid, session_not_found
from warest.app.actions import ActionService, EngineRefused
from warest.app.messaging import IdempotencyMismatch, QueueIsFull, SendOutcome, SessionNotOpen
from warest.app.records import Principal, SessionRecord
from warest.app.sessions import SessionService
from warest.config import Settings
from warest.domain.chats import Chat
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid, ascii_digits, recipients
from warest.domain.messages import ActionNotAllowed, Message
from warest.domain.values import session_name

IDEMPOTENCY_HEADER = "idempotency-key"


EMOJI_MAX = 32


class SendTextBody(Body, kw_only=True):
    limits = {
        "sessionId": NAME_MAX,
        "phone": NAME_MAX,
        "replyMessageId": MESSAGE_ID_MAX,
        "quotedMessageId": MESSAGE_ID_MAX,
        "replyId": MESSAGE_ID_MAX,
        "presence": NAME_MAX,
    }

    to: str | list[str] | None = None
    message: str | None = None
    text: str | None = None
    sessionId: str | None = None  # noqa: N815
    phone: str | None = None
    mentions: list[str] | str | None = None
    replyMessageId: str | None = None  # noqa: N815
    quotedMessageId: str | None = None  # noqa: N815
    replyId: str | None = None  # noqa: N815
    presence: bool | str | None = None
    isForwarded: bool | None = None  # noqa: N815
    forwarded: bool | None = None


def _outcome_view(outcome: SendOutcome) -> dict[str, Any]:
    view: dict[str, Any] = {"to": outcome.to, "messageId": outcome.message_id, "status": outcome.status}
    if outcome.error:
        view["error"] = outcome.error
    return view


async def resolve_session(
    request: Request[Principal, Any, Any], sessions: SessionService, body: SendTextBody | ActionBody
) -> SessionRecord:
    """By ``sessionId``, or by the session's own phone number, among the caller's sessions."""
    if body.sessionId:
        try:
            return await sessions.recent(request.user, session_name(body.sessionId))
        except InvalidValue as error:
            raise invalid("sessionId", error.reason, code=Code.SESSION_REQUIRED) from None
    if body.phone:
        digits = ascii_digits(body.phone)
        for record in await sessions.owned(request.user):
            if record.me_jid and record.me_jid.split("@", 1)[0] == digits:
                return record
        raise session_not_found()
    raise ApiError(
        Code.SESSION_REQUIRED,
        "sessionId is required",
        [{"field": "sessionId", "reason": "missing", "source": "body"}],
    )


class MessagesController(Controller):
    path = "/api/v1/messages"
    tags = ["messages"]

    @post("/send/text", status_code=200)
    async def send_text(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        messaging: Messaging,
        settings: AppSettings,
        data: JSONBody[SendTextBody],
    ) -> Response[Envelope]:
        """Sends a text to one or many recipients; per-recipient results.

        An ``Idempotency-Key`` header makes a retry return the first answer and never send twice.
        """
        text = data.message if data.message is not None else data.text
        if text is None or not text.strip():
            raise invalid("message", "is required", code=Code.MISSING_PARAMETER)
        if data.to is None:
            raise invalid("to", "is required", code=Code.MISSING_PARAMETER)
        try:
            targets = recipients(data.to, settings.default_country_code, "to")
            mentions = (
                []
                if data.mentions is None
                else recipients(data.mentions, settings.default_country_code, "mentions")
            )
        except InvalidValue as error:
            raise invalid(error.field, error.reason) from None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
            raise ApiError(
                Code.INVALID_PARAMETER,
                "Invalid 'Idempotency-Key': 1-255 printable characters",
                [{"field": "Idempotency-Key", "reason": "1-255 printable characters", "source": "header"}],
            )
        record = await resolve_session(request, sessions, data)
        set_label(request.scope, record.label)
        try:
            outcomes = await messaging.send_text(
                record,
                targets,
                text,
                mentions=mentions,
                reply_to=data.replyMessageId or data.quotedMessageId or data.replyId,
                presence=data.presence not in (None, False, "", "false", "0"),
                idempotency_key=key,
            )
        except SessionNotOpen as error:
            raise ApiError(
                Code.SESSION_NOT_LOGGED_IN,
                "Login required (scan QR or pairing)",
                [{"sessionId": record.session_id, "status": error.status}],
            ) from None
        except QueueIsFull as error:
            raise ApiError(Code.RATE_LIMITED, str(error), headers={"Retry-After": "1"}) from None
        except IdempotencyMismatch as error:
            raise ApiError(Code.CONFLICT, str(error)) from None
        return _send_response("Text", outcomes)


def _send_response(kind: str, outcomes: list[SendOutcome]) -> Response[Envelope]:
    views = [_outcome_view(o) for o in outcomes]
    failed = [o for o in outcomes if o.status == "failed"]
    queued = [o for o in outcomes if o.status == "queued"]
    suffix = f" ({len(outcomes)} recipients)" if len(outcomes) > 1 else ""
    if len(failed) == len(outcomes):
        return envelope(Code.SEND_FAILED, f"Failed to send {kind.lower()} message{suffix}", views)
    if failed:
        return envelope(Code.PARTIAL_SUCCESS, f"{kind} message sent to some recipients{suffix}", views)
    if queued:
        return envelope(Code.ACCEPTED, f"{kind} message queued{suffix}", views)
    return envelope(Code.SUCCESS, f"{kind} message sent{suffix}", views)


class ActionBody(Body, kw_only=True):
    limits = {"sessionId": NAME_MAX, "phone": NAME_MAX, "to": NAME_MAX, "emoji": EMOJI_MAX}

    sessionId: str | None = None  # noqa: N815
    phone: str | None = None
    to: str | None = None
    emoji: str | None = None
    message: str | None = None
    text: str | None = None
    duration: int | None = None


_ACTION_FAILURE = {"reaction": Code.REACTION_FAILED, "revoke": Code.MESSAGE_DELETE_FAILED}
_NOT_ALLOWED = {"edit": Code.MESSAGE_EDIT_NOT_ALLOWED, "pin": Code.MESSAGE_PIN_NOT_ALLOWED}


T = TypeVar("T")


async def _act(
    request: Request[Principal, Any, Any],
    sessions: SessionService,
    actions: ActionService,
    body: ActionBody,
    action: str,
    run: Callable[[ActionService, Principal, str], Awaitable[T]],
) -> tuple[SessionRecord, T]:
    record = await resolve_session(request, sessions, body)
    set_label(request.scope, record.label)
    try:
        return record, await run(actions, request.user, record.session_id)
    except SessionNotOpen as error:
        raise ApiError(
            Code.SESSION_NOT_LOGGED_IN,
            "Login required (scan QR or pairing)",
            [{"sessionId": record.session_id, "status": error.status}],
        ) from None
    except ActionNotAllowed as error:
        raise ApiError(_NOT_ALLOWED.get(action, Code.FORBIDDEN), str(error)) from None
    except EngineRefused as error:
        raise ApiError(_ACTION_FAILURE.get(action, Code.DOWNSTREAM_ERROR), str(error)) from None


def _action_result(record: SessionRecord, message: Message, status: str) -> dict[str, Any]:
    return {"sessionId": record.session_id, "to": message.chat, "messageId": message.wa_id, "status": status}


class MessageActionsController(Controller):
    """``/api/v1/messages/{messageId}/action/*`` and chat-level ``/api/v1/messages/action/*``."""

    path = "/api/v1/messages"
    tags = ["messages"]

    @post("/{message_id:str}/action/star", status_code=200)
    async def star(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        record, message = await _act(
            request, sessions, actions, data, "star", lambda a, u, s: a.star(u, s, message_id, True)
        )
        return envelope(Code.SUCCESS, "Message starred", _action_result(record, message, "starred"))

    @post("/{message_id:str}/action/unstar", status_code=200)
    async def unstar(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        record, message = await _act(
            request, sessions, actions, data, "star", lambda a, u, s: a.star(u, s, message_id, False)
        )
        return envelope(Code.SUCCESS, "Message unstarred", _action_result(record, message, "unstarred"))

    @post("/{message_id:str}/action/reaction", status_code=200)
    async def reaction(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        if not data.emoji:
            raise invalid("emoji", "is required", code=Code.MISSING_PARAMETER)
        emoji = data.emoji
        record, message = await _act(
            request, sessions, actions, data, "reaction", lambda a, u, s: a.react(u, s, message_id, emoji)
        )
        return envelope(Code.SUCCESS, "Reaction applied", _action_result(record, message, "reacted"))

    @post("/{message_id:str}/action/unreaction", status_code=200)
    async def unreaction(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        record, message = await _act(
            request, sessions, actions, data, "reaction", lambda a, u, s: a.react(u, s, message_id, "")
        )
        return envelope(Code.SUCCESS, "Reaction removed", _action_result(record, message, "unreacted"))

    @post("/{message_id:str}/action/revoke", status_code=200)
    async def revoke(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        record, message = await _act(
            request, sessions, actions, data, "revoke", lambda a, u, s: a.revoke(u, s, message_id)
        )
        return envelope(Code.SUCCESS, "Message revoked", _action_result(record, message, "revoked"))

    @post("/{message_id:str}/action/edit", status_code=200)
    async def edit(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        text = data.message if data.message is not None else data.text
        if not text or not text.strip():
            raise invalid("message", "is required", code=Code.MISSING_PARAMETER)
        record, message = await _act(
            request, sessions, actions, data, "edit", lambda a, u, s: a.edit(u, s, message_id, text)
        )
        return envelope(Code.SUCCESS, "Message edited", _action_result(record, message, "edited"))

    @route("/{message_id:str}/action/delete", http_method=["DELETE", "POST"], status_code=200)
    async def delete_for_me(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        record, message = await _act(
            request, sessions, actions, data, "delete", lambda a, u, s: a.delete_for_me(u, s, message_id)
        )
        return envelope(Code.SUCCESS, "Message deleted for me", _action_result(record, message, "deleted"))

    @post("/{message_id:str}/action/mark-as-read", status_code=200)
    async def mark_as_read(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        settings: AppSettings,
        message_id: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        chat = _chat_of(settings, data)
        record, marked = await _act(
            request, sessions, actions, data, "read", lambda a, u, s: a.mark_read(u, s, chat, [message_id])
        )
        if not marked:
            raise ApiError(Code.NOT_FOUND, f"no received message '{message_id}' in {chat}")
        return envelope(
            Code.SUCCESS,
            "Message marked as read",
            {"sessionId": record.session_id, "to": str(chat), "messageId": message_id, "status": "read"},
        )

    @post("/action/{action:str}", status_code=200)
    async def chat_action(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        settings: AppSettings,
        action: FromPath[str],
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        return await self._chat_action(request, sessions, actions, settings, action, data)

    @route("/action/clear-all", http_method=["DELETE", "POST"], status_code=200)
    async def clear_all(
        self,
        request: Request[Principal, Any, Any],
        sessions: Sessions,
        actions: Actions,
        settings: AppSettings,
        data: JSONBody[ActionBody],
    ) -> Response[Envelope]:
        return await self._chat_action(request, sessions, actions, settings, "clear-all", data)

    async def _chat_action(
        self,
        request: Request[Principal, Any, Any],
        sessions: SessionService,
        actions: ActionService,
        settings: Settings,
        action: str,
        data: ActionBody,
    ) -> Response[Envelope]:
        chat = _chat_of(settings, data)
        now = datetime.now(UTC)
        changes: dict[str, tuple[Callable[[Chat], None], str]] = {
            "mute": (
                lambda c: c.mute(now + timedelta(minutes=max(1, min(data.duration or 60, 43200)))),
                "Chat muted",
            ),
            "unmute": (lambda c: c.mute(None), "Chat unmuted"),
            "archive": (lambda c: c.archive(True), "Chat archived"),
            "unarchive": (lambda c: c.archive(False), "Chat unarchived"),
            "clear-all": (lambda c: c.clear(now), "Chat cleared"),
        }
        if action not in changes:
            raise ApiError(Code.NOT_FOUND, f"unknown chat action '{action}'")
        change, message = changes[action]
        record, chat_state = await _act(
            request, sessions, actions, data, action, lambda a, u, s: a.chat_action(u, s, chat, change)
        )
        return envelope(
            Code.SUCCESS,
            message,
            {
                "sessionId": record.session_id,
                "to": str(chat),
                "status": action,
                "mutedUntil": chat_state.muted_until.isoformat() if chat_state.muted_until else None,
                "archived": chat_state.archived,
            },
        )


def _chat_of(settings: Settings, data: ActionBody) -> Jid:
    if not data.to:
        raise invalid("to", "is required (the chat)", code=Code.MISSING_PARAMETER)
    try:
        return Jid.parse(data.to, settings.default_country_code, "to")
    except InvalidValue as error:
        raise invalid("to", error.reason) from None
