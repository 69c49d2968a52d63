"""Webhook endpoints, deliveries, replays and preflight, as the owner of a session sees them.

Every endpoint change is an event of a ``WebhookEndpoint`` aggregate; the outbox
projection reads them in log order. Secrets are sealed before they enter the log and are
shown once: when warest generates one. URLs are checked by the egress guard (no private,
loopback, link-local or metadata addresses unless configured) before they are saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import msgspec

from warest.app.actions import ActionService
from warest.app.commands import retry_on_conflict
from warest.app.messaging import MessagingService
from warest.app.ports import EventStore, ReadModelWaiter
from warest.app.records import Principal, SessionRecord
from warest.app.sessions import SessionService
from warest.app.webhook_actions import ActionRunner, ActionsInvalid, parse_reply, template_context
from warest.app.webhook_dispatch import Answer, Delivery, Sender, signed_headers
from warest.app.webhook_events import SessionInfo, epoch_ms, render_body
from warest.app.webhook_signing import new_webhook_secret, validate_secret
from warest.domain import ids
from warest.domain.errors import InvalidValue, NotFound
from warest.domain.jid import Jid
from warest.domain.sessions import Session
from warest.domain.webhooks import PRIMARY, WebhookEndpoint, endpoint_id, endpoint_name, event_filter

MAX_PREFLIGHT_URLS = 5
MAX_REPLAY = 100_000
MAX_PENDING_REPLIES = 20
ACTIONS_TIMEOUT_S = 300.0
REPLY_ACTOR = UUID(int=0)
"""Reply actions act for the session's registry; no user (and never the admin) is behind them."""


# -- ports and views ------------------------------------------------------------------------


class SecretBox(Protocol):
    def seal(self, secret: str) -> str: ...
    def open(self, sealed: str) -> str: ...


class UrlGuard(Protocol):
    async def check(self, url: str) -> None:
        """Raises ``InvalidValue('url', reason)`` when the URL may not be called."""


class EndpointView(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    url: str
    events: list[str] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_by: str | None
    created_at: datetime
    updated_at: datetime
    rotating: bool
    previous_until: datetime | None
    failures: int | None = None
    open_until: datetime | None = None
    cooloff_until: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None


class DeliveryView(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: str
    endpoint_id: UUID
    endpoint: str
    position: int
    seq: int
    event: str
    event_id: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    latency_ms: int | None
    replays: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    actions: list[dict[str, Any]] | None


class AttemptView(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    at: datetime
    status: int | None
    latency_ms: int
    error: str | None


@dataclass(frozen=True)
class DeliveryFilter:
    endpoint_id: UUID | None = None
    status: str | None = None
    event: str | None = None
    before: tuple[int, UUID | None] | None = None  # (position, endpoint id): page after this row
    limit: int = 100


@dataclass(frozen=True)
class ReplayRange:
    from_position: int | None = None
    to_position: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    events: tuple[str, ...] = ()
    limit: int = MAX_REPLAY


class WebhookQueries(Protocol):
    async def endpoints(self, session_id: UUID) -> list[EndpointView]: ...
    async def deliveries(self, session_id: UUID, where: DeliveryFilter) -> list[DeliveryView]: ...
    async def delivery(
        self, session_id: UUID, delivery: str
    ) -> tuple[DeliveryView, list[AttemptView]] | None: ...
    async def redeliver(self, session_id: UUID, delivery: str) -> bool: ...
    async def reset_health(self, endpoint_id: UUID) -> None:
        """Clears the endpoint's failures, open circuit and cool-off (an operational reset:
        this state is the dispatcher's, not the log's)."""

    async def replay(self, endpoint_id: UUID, session_id: UUID, span: ReplayRange) -> int: ...


@dataclass(frozen=True)
class Saved:
    endpoint: EndpointView
    secret: str | None  # shown once: only when warest generated it


@dataclass(frozen=True)
class PreflightResult:
    target: str
    ok: bool
    status: int | None
    round_trip_ms: int
    error: str | None = None


STATUSES = ("pending", "delivered", "failed")
CONFIG_FIELDS = {"url": "webhookUrl", "secret": "webhookSecret"}
"""The session config's names of an endpoint's fields."""


class WebhookService:
    def __init__(
        self,
        store: EventStore,
        waiter: ReadModelWaiter,
        sessions: SessionService,
        queries: WebhookQueries,
        secrets: SecretBox,
        guard: UrlGuard,
        sender: Sender,
        *,
        rotation_grace_s: int,
        preflight_timeout_s: float,
        sha2: str,
        rescan: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._waiter = waiter
        self._sessions = sessions
        sessions.when_deleted(self._remove_all)
        self._queries = queries
        self._secrets = secrets
        self._guard = guard
        self._sender = sender
        self._grace = timedelta(seconds=rotation_grace_s)
        self._preflight_timeout_s = preflight_timeout_s
        self._sha2 = sha2
        self._rescan = rescan

    # -- endpoints --------------------------------------------------------------------------

    async def endpoints(self, owner: Principal, session: str) -> list[EndpointView]:
        record = await self._sessions.get(owner, session)
        return await self._queries.endpoints(record.id)

    async def endpoint(self, owner: Principal, session: str, name: str) -> EndpointView:
        for view in await self.endpoints(owner, session):
            if view.name == name:
                return view
        raise NotFound(f"webhook '{name}' not found")

    async def add(
        self,
        owner: Principal,
        session: str,
        name: str,
        url: str,
        secret: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        *,
        preflight: bool = False,
    ) -> Saved:
        record = await self._sessions.get(owner, session)
        name = endpoint_name(name)
        event_filter(events)
        shown, secret = self._secret(secret)
        await self._guard.check(url)
        if preflight:
            await self._require_preflight(owner, record.session_id, record.label, url, secret)
        sealed = self._secrets.seal(secret)
        incarnation = await self._incarnation(record)
        existing = await self._store.get(endpoint_id(record.registry, record.session_id, name, incarnation))
        if existing is None:
            aggregate = WebhookEndpoint.add(
                record.registry, record.session_id, name, url, sealed, events, description, incarnation
            )
        else:
            existing.re_add(url, sealed, events, description)
            aggregate = existing
        await self._save(aggregate)
        if existing is not None:  # a removed name used again starts fresh
            await self._fresh_start(aggregate.id)
        return Saved(await self.endpoint(owner, session, name), shown)

    async def update(
        self,
        owner: Principal,
        session: str,
        name: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> EndpointView:
        if url is not None:
            await self._guard.check(url)
        aggregate = await self._aggregate(owner, session, name)
        aggregate.change(url, events, description)
        was_disabled = not aggregate.enabled
        if enabled is True:
            aggregate.enable()
        elif enabled is False:
            aggregate.disable("disabled by its owner")
        await self._save(aggregate)
        if enabled and was_disabled:  # enabled again: a fresh start, as after a reset
            await self._fresh_start(aggregate.id)
        elif enabled:
            self._kick()
        return await self.endpoint(owner, session, name)

    async def reset(self, owner: Principal, session: str, name: str) -> EndpointView:
        """Ends the endpoint's cool-off (after a 401/403) and open circuit and forgets its
        failures in a row: its pending deliveries go out at once."""
        aggregate = await self._aggregate(owner, session, name)
        await self._fresh_start(aggregate.id)
        return await self.endpoint(owner, session, name)

    async def rotate(
        self, owner: Principal, session: str, name: str, secret: str | None = None, grace_s: int | None = None
    ) -> Saved:
        aggregate = await self._aggregate(owner, session, name)
        shown, secret = self._secret(secret)
        grace = self._grace if grace_s is None else timedelta(seconds=_grace(grace_s))
        aggregate.rotate_secret(self._secrets.seal(secret), datetime.now(UTC) + grace if grace else None)
        await self._save(aggregate)
        return Saved(await self.endpoint(owner, session, name), shown)

    async def remove(self, owner: Principal, session: str, name: str) -> None:
        aggregate = await self._aggregate(owner, session, name)
        aggregate.remove()
        await self._save(aggregate)

    async def configure_primary(
        self, owner: Principal, session: str, url: str | None, secret: str | None, *, preflight: bool
    ) -> Saved | None:
        """The original's ``webhookUrl``/``webhookSecret`` of the session config: the endpoint
        named ``primary``. ``url=""`` removes it; ``None`` keeps it. A refused value names the
        config's field (``webhookUrl``, ``webhookSecret``)."""
        try:
            return await self._configure_primary(owner, session, url, secret, preflight=preflight)
        except InvalidValue as error:
            if error.field not in CONFIG_FIELDS:
                raise
            raise InvalidValue(CONFIG_FIELDS[error.field], error.reason) from None

    async def _configure_primary(
        self, owner: Principal, session: str, url: str | None, secret: str | None, *, preflight: bool
    ) -> Saved | None:
        record = await self._sessions.get(owner, session)
        current: WebhookEndpoint | None = await self._store.get(
            endpoint_id(record.registry, record.session_id, PRIMARY, await self._incarnation(record))
        )
        live = current is not None and not current.removed
        if url == "":
            if current is not None and live:
                current.remove()
                await self._save(current)
            return None
        if url is None and secret is None:
            return Saved(await self.endpoint(owner, session, PRIMARY), None) if live else None
        if current is None or not live:
            if url is None:
                raise InvalidValue("webhookUrl", "is required to set up the session's webhook")
            return await self.add(owner, session, PRIMARY, url, secret, preflight=preflight)
        if url is not None:
            await self._guard.check(url)
            if preflight:
                secrets = [secret] if secret else [self._secrets.open(current.secret_sealed)]
                await self._require_preflight(owner, record.session_id, record.label, url, secrets[0])
            current.change(url)
        if secret:
            validate(secret)
            current.rotate_secret(self._secrets.seal(secret), datetime.now(UTC) + self._grace)
        await self._save(current)
        return Saved(await self.endpoint(owner, session, PRIMARY), None)

    # -- deliveries -------------------------------------------------------------------------

    async def deliveries(
        self, owner: Principal, session: str, where: DeliveryFilter, endpoint: str | None = None
    ) -> list[DeliveryView]:
        record = await self._sessions.get(owner, session)
        if where.status is not None and where.status not in STATUSES:
            raise InvalidValue("status", f"must be one of {', '.join(STATUSES)}")
        if where.event is not None:
            event_filter([where.event], "event")
        if endpoint is not None:
            where = dataclasses.replace(where, endpoint_id=await self._endpoint_id(owner, session, endpoint))
        return await self._queries.deliveries(record.id, where)

    async def delivery(
        self, owner: Principal, session: str, delivery: str
    ) -> tuple[DeliveryView, list[AttemptView]]:
        record = await self._sessions.get(owner, session)
        found = await self._queries.delivery(record.id, delivery)
        if found is None:
            raise NotFound(f"delivery '{delivery}' not found")
        return found

    async def redeliver(self, owner: Principal, session: str, delivery: str) -> None:
        record = await self._sessions.get(owner, session)
        if not await self._queries.redeliver(record.id, delivery):
            raise NotFound(f"delivery '{delivery}' not found")
        self._kick()

    async def replay(self, owner: Principal, session: str, endpoint: str, span: ReplayRange) -> int:
        record = await self._sessions.get(owner, session)
        if all(v is None for v in (span.from_position, span.to_position, span.since_ms, span.until_ms)):
            raise InvalidValue("from", "give a range: fromPosition/toPosition or since/until")
        event_filter(list(span.events))
        target = await self._endpoint_id(owner, session, endpoint)
        if not span.events and endpoint != "default":  # the endpoint's own filter
            wanted = (await self.endpoint(owner, session, endpoint)).events or []
            span = dataclasses.replace(span, events=tuple(wanted))
        count = await self._queries.replay(target, record.id, span)
        self._kick()
        return count

    # -- preflight --------------------------------------------------------------------------

    async def preflight(
        self, owner: Principal, session: str, urls: Sequence[str], secret: str
    ) -> list[PreflightResult]:
        record = await self._sessions.get(owner, session)
        if not urls or len(urls) > MAX_PREFLIGHT_URLS:
            raise InvalidValue("url", f"give 1 to {MAX_PREFLIGHT_URLS} URLs")
        if not isinstance(secret, str) or not secret:
            raise InvalidValue("secret", "is required")
        return list(
            await asyncio.gather(
                *(self._ping(owner, record.session_id, record.label, u, secret) for u in urls)
            )
        )

    async def _ping(
        self, owner: Principal, session: str, label: str, url: str, secret: str
    ) -> PreflightResult:
        try:
            await self._guard.check(url)
        except InvalidValue as refused:
            return PreflightResult(url, False, None, 0, refused.reason)
        now = datetime.now(UTC)
        ts = epoch_ms(now)
        about = SessionInfo(
            ids.session_id(owner.registry, session), session, owner.registry, label, owner.username
        )
        body = render_body("preflight", {"ping": True}, ts, about)
        headers = signed_headers(
            body, f"msg_preflight_{ts}", "preflight", ts, about, [secret], now,
            sha2=self._sha2, user_agent="WAREst/1 (preflight) warest",
        )  # fmt: skip
        headers["x-warest-preflight"] = "1"
        answer = await self._sender.post(url, body, headers, self._preflight_timeout_s)
        ok = answer.status is not None and 200 <= answer.status < 300
        error = None if ok else (answer.error or f"HTTP {answer.status}")
        return PreflightResult(url, ok, answer.status, answer.latency_ms, error)

    async def _require_preflight(
        self, owner: Principal, session: str, label: str, url: str, secret: str
    ) -> None:
        result = await self._ping(owner, session, label, url, secret)
        if not result.ok:
            raise PreflightFailed(result)

    # -- helpers ------------------------------------------------------------------------------

    def _secret(self, secret: str | None) -> tuple[str | None, str]:
        if secret is None or secret == "":
            generated = new_webhook_secret()
            return generated, generated
        validate(secret)
        return None, secret

    async def _aggregate(self, owner: Principal, session: str, name: str) -> WebhookEndpoint:
        record = await self._sessions.get(owner, session)
        incarnation = await self._incarnation(record)
        aggregate = await self._store.get(
            endpoint_id(record.registry, record.session_id, endpoint_name(name), incarnation)
        )
        if aggregate is None or aggregate.removed:
            raise NotFound(f"webhook '{name}' not found")
        assert isinstance(aggregate, WebhookEndpoint)
        return aggregate

    async def _incarnation(self, record: SessionRecord) -> int:
        """The session's incarnation: its endpoints' ids include it, so a session deleted
        and created again inherits none of them."""
        session: Session | None = await self._store.get(ids.session_id(record.registry, record.session_id))
        return session.incarnation if session is not None else 1

    async def _remove_all(self, record: SessionRecord) -> None:
        """A session being deleted: its endpoints are removed with it (nothing is delivered
        for it any more, and a session created again under its name starts without any)."""
        for view in await self._queries.endpoints(record.id):
            aggregate: WebhookEndpoint | None = await self._store.get(view.id)
            if aggregate is not None and not aggregate.removed:
                aggregate.remove()
                await self._save(aggregate)

    async def _endpoint_id(self, owner: Principal, session: str, name: str) -> UUID:
        if name == "default":
            return ids.DEFAULT_WEBHOOK_ENDPOINT
        return (await self._aggregate(owner, session, name)).id

    async def _save(self, aggregate: WebhookEndpoint) -> None:
        """Saves and waits for the outbox to know (a concurrent change answers 409)."""
        await self._waiter.wait(await self._store.save(aggregate))

    async def _fresh_start(self, endpoint_id_: UUID) -> None:
        await self._queries.reset_health(endpoint_id_)
        self._kick()

    def _kick(self) -> None:
        if self._rescan is not None:
            self._rescan()


class DeliveryDisabler:
    """``EndpointControl``: a receiver answering 404/410 disables its endpoint, as an event
    (kept and visible; the owner enables it again)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def disable_for_delivery(self, endpoint_id_: UUID, reason: str) -> None:
        async def command() -> None:
            aggregate = await self._store.get(endpoint_id_)
            if isinstance(aggregate, WebhookEndpoint) and not aggregate.removed and aggregate.enabled:
                aggregate.disable(reason, by="delivery")
                await self._store.save(aggregate)

        await retry_on_conflict(command)


class PreflightFailed(Exception):
    def __init__(self, result: PreflightResult) -> None:
        super().__init__(f"webhook preflight failed: {result.error}")
        self.result = result


def validate(secret: str) -> None:
    try:
        validate_secret(secret)
    except ValueError as error:
        raise InvalidValue("secret", str(error)) from None


def _grace(seconds: int) -> int:
    if not isinstance(seconds, int) or not 0 <= seconds <= 30 * 86400:
        raise InvalidValue("graceSeconds", "must be between 0 and 2592000 (30 days)")
    return seconds


# -- actions in response --------------------------------------------------------------------


class _SessionActions:
    """The ``ActionPort`` of one session: every call is an ordinary command of its owner."""

    def __init__(self, owner: Principal, session: str, messaging: MessagingService,
                 actions: ActionService, sessions: SessionService) -> None:  # fmt: skip
        self._owner = owner
        self._session = session
        self._messaging = messaging
        self._actions = actions
        self._sessions = sessions

    async def send_text(self, to: Jid, text: str, mentions: list[str], reply_to: str | None) -> str:
        record = await self._sessions.get(self._owner, self._session)
        outcome = (
            await self._messaging.send_text(
                record,
                [to],
                text,
                mentions=[Jid.parse(m, field="mentions") for m in mentions],
                reply_to=reply_to,
            )
        )[0]
        if outcome.error:
            raise RuntimeError(outcome.error)
        return outcome.message_id

    async def react(self, chat: Jid, message_id: str, emoji: str) -> None:
        await self._actions.react(self._owner, self._session, message_id, emoji, chat=str(chat))

    async def star(self, chat: Jid, message_id: str, starred: bool) -> None:
        await self._actions.star(self._owner, self._session, message_id, starred, chat=str(chat))

    async def delete_for_me(self, chat: Jid, message_id: str) -> None:
        await self._actions.delete_for_me(self._owner, self._session, message_id, chat=str(chat))

    async def revoke(self, chat: Jid, message_id: str) -> None:
        await self._actions.revoke(self._owner, self._session, message_id, chat=str(chat))

    async def edit(self, chat: Jid, message_id: str, text: str) -> None:
        await self._actions.edit(self._owner, self._session, message_id, text, chat=str(chat))

    async def read(self, chat: Jid, message_ids: list[str]) -> None:
        await self._actions.mark_read(self._owner, self._session, chat, message_ids)

    async def presence(self, state: str, to: Jid | None) -> None:
        await self._actions.presence(self._owner, self._session, state, to)


class WebhookActions:
    """Runs the actions of 2xx replies, one reply at a time per session, never blocking
    the delivery lane that received them. A session holds at most ``MAX_PENDING_REPLIES``
    replies waiting to run, and a reply runs for at most ``ACTIONS_TIMEOUT_S``: a receiver
    cannot pile up work in the gateway."""

    def __init__(self, messaging: MessagingService, actions: ActionService, sessions: SessionService,
                 *, default_country_code: str, default_delay_ms: int) -> None:  # fmt: skip
        self._messaging = messaging
        self._actions = actions
        self._sessions = sessions
        self._country = default_country_code
        self._delay_ms = default_delay_ms
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._pending: dict[UUID, int] = {}

    def accept(self, delivery: Delivery, answer: Answer) -> Awaitable[list[dict[str, Any]] | None] | None:
        content_type = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), None)
        try:
            reply = parse_reply(answer.body, content_type)
        except ActionsInvalid as error:
            return _done([_refused(str(error))])
        if reply is None:
            return None
        if self._pending.get(delivery.session_id, 0) >= MAX_PENDING_REPLIES:
            return _done([_refused(f"{MAX_PENDING_REPLIES} replies of this session are waiting to run")])
        self._pending[delivery.session_id] = self._pending.get(delivery.session_id, 0) + 1
        task = asyncio.ensure_future(self._run(delivery, reply))
        task.add_done_callback(lambda _: self._release(delivery.session_id))  # also when cancelled
        return task

    def _release(self, session_id: UUID) -> None:
        left = self._pending.get(session_id, 1) - 1
        if left:
            self._pending[session_id] = left
        else:
            self._pending.pop(session_id, None)
            self._locks.pop(session_id, None)

    async def _run(self, delivery: Delivery, reply: Any) -> list[dict[str, Any]]:
        owner = Principal(  # the session's owner, as the services scope by registry only
            user_id=REPLY_ACTOR,
            username=delivery.username or "",
            registry=delivery.registry,
            role="user",
        )
        port = _SessionActions(owner, delivery.session, self._messaging, self._actions, self._sessions)
        runner = ActionRunner(port, default_country_code=self._country, default_delay_ms=self._delay_ms)
        context = template_context(msgspec.json.decode(delivery.body))
        try:
            async with self._locks.setdefault(delivery.session_id, asyncio.Lock()):
                async with asyncio.timeout(ACTIONS_TIMEOUT_S):
                    results = await runner.run(reply, context)
        except TimeoutError:
            return [
                _refused(f"the actions did not finish within {ACTIONS_TIMEOUT_S:g}s; the rest was cancelled")
            ]
        return [dataclasses.asdict(r) for r in results]


def _refused(reason: str) -> dict[str, Any]:
    return {"path": "", "kind": "reply", "ok": False, "error": reason, "message_id": None}


async def _done(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return report
