"""``/api/v1/messages/send/*``: sending through one of the caller's sessions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody

from warest.api.codes import Code
from warest.api.envelope import Envelope, envelope
from warest.api.errors import ApiError
from warest.api.middleware import set_label
from warest.app.messaging import IdempotencyMismatch, QueueIsFull, SendOutcome, SessionNotOpen
from warest.app.records import Principal, SessionRecord
from warest.domain.errors import InvalidValue, NotFound
from warest.domain.jid import recipients
from warest.domain.values import session_name

IDEMPOTENCY_HEADER = "idempotency-key"


class SendTextBody(msgspec.Struct, kw_only=True):
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


def _invalid(field: str, reason: str, code: Code = Code.INVALID_PARAMETER) -> ApiError:
    return ApiError(
        code, f"Invalid '{field}': {reason}", [{"field": field, "reason": reason, "source": "body"}]
    )


def _outcome_view(outcome: SendOutcome) -> dict[str, Any]:
    view: dict[str, Any] = {"to": outcome.to, "messageId": outcome.message_id, "status": outcome.status}
    if outcome.error:
        view["error"] = outcome.error
    return view


async def resolve_session(
    request: Request[Principal, Any, Any], state: State, body: SendTextBody
) -> SessionRecord:
    """By ``sessionId``, or by the session's own phone number, among the caller's sessions."""
    sessions = state.services.sessions
    if body.sessionId:
        try:
            return await sessions.get(request.user, session_name(body.sessionId))  # type: ignore[no-any-return]
        except InvalidValue as error:
            raise _invalid("sessionId", error.reason, Code.SESSION_REQUIRED) from None
        except NotFound:
            raise ApiError(Code.SESSION_NOT_FOUND, "Session not found") from None
    if body.phone:
        digits = "".join(c for c in body.phone if c.isdigit())
        for record in await sessions.owned(request.user):
            if record.me_jid and record.me_jid.split("@", 1)[0] == digits:
                return record  # type: ignore[no-any-return]
        raise ApiError(Code.SESSION_NOT_FOUND, "Session not found")
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
        self, request: Request[Principal, Any, Any], state: State, data: JSONBody[SendTextBody]
    ) -> Response[Envelope]:
        """Sends a text to one or many recipients; per-recipient results.

        An ``Idempotency-Key`` header makes a retry return the first answer and never send twice.
        """
        settings = state.services.settings
        text = data.message if data.message is not None else data.text
        if text is None or not text.strip():
            raise _invalid("message", "is required", Code.MISSING_PARAMETER)
        if data.to is None:
            raise _invalid("to", "is required", Code.MISSING_PARAMETER)
        try:
            targets = recipients(data.to, settings.default_country_code, "to")
            mentions = (
                []
                if data.mentions is None
                else recipients(data.mentions, settings.default_country_code, "mentions")
            )
        except InvalidValue as error:
            raise _invalid(error.field, error.reason) from None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
            raise ApiError(
                Code.INVALID_PARAMETER,
                "Invalid 'Idempotency-Key': 1-255 printable characters",
                [{"field": "Idempotency-Key", "reason": "1-255 printable characters", "source": "header"}],
            )
        record = await resolve_session(request, state, data)
        set_label(request.scope, record.label)
        try:
            outcomes = await state.services.messaging.send_text(
                request.user,
                record.session_id,
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
