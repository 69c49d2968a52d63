"""One session's link to WhatsApp through a neonize ``NewAClient`` (the Connection port).

Threads and order: goneonize runs the whatsmeow client in a worker thread and schedules
every event handler on the event loop as its own task. The handlers here only put a job
on a queue, and one pump task runs the jobs one by one, so the listener hears about
events in the order whatsmeow produced them, even when a listener call is slow.

Generations: every (re)started client gets a new generation number; jobs from an older
client are dropped, so a stopped client's late events cannot reach the listener.

The inbox is bounded (``inbox_size`` events): when the listener falls behind (its saves
are retried until stored while the database is away), neonize's callbacks wait for room
instead of queueing without limit or dropping. goneonize does not wait for its callbacks
(it schedules each on the loop), so what waits are those callbacks; the lifecycle's own
notices (a few per state change) bypass the bound so a full inbox cannot stall a stop.

Reconnects: whatsmeow reconnects a logged-in client by itself after an unexpected drop
(neonize cannot turn that off). On ``Disconnected`` this connection reports
``reconnecting(1)``, waits ``reconnect_base_s``, and while the session stays offline
reports the next attempt after a delay that doubles up to ``reconnect_max_s`` (at least
``suspended_retry_s`` once the outage has lasted ``suspend_after_s``). These reports are
live status: the listener records the loss once per outage. At each step it replaces the
client with a fresh one when whatsmeow cannot recover it: the Go thread has ended, or the
client never logged in; the replaced client's database connections are closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from neonize.exc import NeonizeError
from neonize.proto.Neonize_pb2 import Message as MessageEvent
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WaMessage
from neonize.utils.enum import ClientName, ClientType, ReceiptType

from warest.app.engine import (
    Device,
    EngineError,
    EngineListener,
    MessageRef,
    NotConnected,
    OutboundText,
    SendResult,
    SessionRef,
)
from warest.app.happenings import Closed, Connecting, Happening, PairingCodeShown, Received
from warest.infra.engines.neonize.client import ClientFactory, NeonizeClient, proxy_settings
from warest.infra.engines.neonize.errors import engine_error
from warest.infra.engines.neonize.jids import USER_SERVER, from_epoch, jid_from_str
from warest.infra.engines.neonize.lifecycle import Lifecycle
from warest.infra.engines.neonize.outbound import RecentMessages, presence_args, quotable, text_message
from warest.infra.engines.neonize.store import DeviceStore
from warest.infra.engines.neonize.translator import EVENT_TYPES, me_from_device, translate

log = logging.getLogger("warest.engines.neonize")

Job = Callable[[], Awaitable[None]]
ProxyFor = Callable[[SessionRef], str | None]

INBOX_SIZE = 1000
"""Events from neonize waiting for the listener before the next callback waits for room."""


class Inbox:
    """The jobs between neonize's callbacks and the pump, in arrival order.

    ``put`` (what WhatsApp reports) waits while ``size`` such jobs are queued or running;
    ``put_control`` (the lifecycle's own notices) never waits."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        self._jobs: asyncio.Queue[tuple[Job, bool]] = asyncio.Queue()
        self._room = asyncio.Semaphore(size)

    async def put(self, job: Job) -> None:
        await self._room.acquire()
        self._jobs.put_nowait((job, True))

    def put_control(self, job: Job) -> None:
        self._jobs.put_nowait((job, False))

    async def run(self, on_error: Callable[[], None]) -> None:
        """Runs the jobs one at a time, for ever (the pump)."""
        while True:
            job, counted = await self._jobs.get()
            try:
                await job()
            except Exception:
                on_error()
            finally:
                if counted:
                    self._room.release()

    def qsize(self) -> int:
        return self._jobs.qsize()


def utc_now() -> datetime:
    return datetime.now(UTC)


class NeonizeConnection(Lifecycle):
    """The Connection port on neonize; lifecycle handling lives in ``Lifecycle``."""

    def __init__(
        self,
        session: SessionRef,
        listener: EngineListener,
        *,
        store: DeviceStore,
        client_factory: ClientFactory,
        proxy_for: ProxyFor | None = None,
        reconnect_base_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        qr_durations_s: tuple[float, float] = (60.0, 20.0),
        qr_grace_s: float = 5.0,
        pair_wait_s: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
        suspend_after_s: float = 300.0,
        suspended_retry_s: float = 120.0,
        inbox_size: int = INBOX_SIZE,
    ) -> None:
        super().__init__(
            reconnect_base_s, reconnect_max_s, qr_durations_s, qr_grace_s, suspend_after_s, suspended_retry_s
        )
        self.session = session
        self.listener = listener
        self._store = store
        self._factory = client_factory
        self._proxy_for = proxy_for
        self._pair_wait_s = pair_wait_s
        self._clock = clock
        self._inbox = Inbox(inbox_size)
        self._databases: dict[int, str] = {}  # id(client) -> the database it opened
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._recent = RecentMessages()

    # -- Connection port -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._online

    async def start(self, pair_phone: str | None = None) -> None:
        phone = _phone_digits(pair_phone) if pair_phone else None
        async with self._lock:
            self._ensure_pump()
            self._wanted = True
            if self._client is None:
                self._pair_phone = phone
                self._tell(Connecting())
                try:
                    await self._launch()
                except Exception as error:
                    failure = error if isinstance(error, EngineError) else engine_error(error, "connect")
                    await self._fail_start(f"start_failed: {failure}")
                    raise failure from error
            elif self._online:
                return  # already logged in: a second start changes nothing
            self._pair_phone = phone  # a running, unpaired client switches between QR and code
            if phone is None:
                return
            self._code_generation = self._generation
            try:
                await self._request_pairing_code(phone)
            except EngineError as error:
                await self._fail_start(f"pairing_failed: {error}")
                raise

    async def stop(self) -> None:
        async with self._lock:
            await self._end()

    async def logout(self) -> None:
        async with self._lock:
            client, online = self._client, self._online
            if client is not None and online:
                try:
                    await client.logout()  # unlinks on WhatsApp; whatsmeow deletes the device too
                except NeonizeError as error:
                    log.warning("session %s: logout on WhatsApp failed: %s", self.session.key, error)
            await self._end()
            await self._wipe()

    async def send_text(self, message: OutboundText) -> SendResult:
        """Sends with the id whatsmeow generates: goneonize's SendMessage passes no
        SendRequestExtra, so ``message.wa_id`` cannot be used. The id is reported in the
        result, and the runtime claims it for the message with its ``Sent``."""
        client = self._online_client()
        quoted = self._recent.get(message.reply_to) if message.reply_to else None
        payload = text_message(message, quoted)
        try:
            response = await client.send_message(jid_from_str(message.to), payload)
        except NeonizeError as error:
            raise engine_error(error, "send") from error
        wa_id = str(response.ID)
        if self._me is not None:
            self._recent.remember(wa_id, self._me.jid, quotable(payload))
        return SendResult(wa_id=wa_id, sent_at=from_epoch(int(response.Timestamp), self._clock()))

    async def send_reaction(self, target: MessageRef, emoji: str) -> None:
        client = self._online_client()
        chat = jid_from_str(target.chat)
        try:
            reaction = await client.build_reaction(chat, jid_from_str(target.sender), target.wa_id, emoji)
            await client.send_message(chat, reaction)
        except NeonizeError as error:
            raise engine_error(error, "reaction") from error

    async def send_edit(self, target: MessageRef, text: str) -> None:
        client = self._online_client()
        try:
            await client.edit_message(jid_from_str(target.chat), target.wa_id, WaMessage(conversation=text))
        except NeonizeError as error:
            raise engine_error(error, "edit") from error

    async def send_revoke(self, target: MessageRef) -> None:
        client = self._online_client()
        try:
            await client.revoke_message(jid_from_str(target.chat), jid_from_str(target.sender), target.wa_id)
        except NeonizeError as error:
            raise engine_error(error, "revoke") from error

    async def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        client = self._online_client()
        by_sender: dict[str, list[str]] = {}
        for message in messages:
            by_sender.setdefault(message.sender, []).append(message.wa_id)
        try:
            for sender, ids in by_sender.items():
                await client.mark_read(
                    *ids, chat=jid_from_str(chat), sender=jid_from_str(sender), receipt=ReceiptType.READ
                )
        except NeonizeError as error:
            raise engine_error(error, "read") from error

    async def send_presence(self, to: str, state: str) -> None:
        chat_state, media = presence_args(state)
        client = self._online_client()
        try:
            await client.send_chat_presence(jid_from_str(to), chat_state, media)
        except NeonizeError as error:
            raise engine_error(error, "presence") from error

    async def device(self) -> Device | None:
        client = self._client
        if client is None or not self._registered:
            return None  # before goneonize registers the client, its calls would crash Go
        try:
            info = await client.get_me()
        except NeonizeError:
            return None
        me = me_from_device(info)
        if me is None:
            return None
        user, _, server = me.jid.partition("@")
        extra = {"jid": me.jid, "engine": "neonize"}
        if me.lid:
            extra["lid"] = me.lid
        if info.BussinessName:
            extra["business_name"] = str(info.BussinessName)
        return Device(
            name=me.push_name or me.jid,
            phone=user if server == USER_SERVER else None,
            platform=str(info.Platform) or "unknown",
            extra=extra,
        )

    # -- engine-facing -----------------------------------------------------------------------

    async def close(self) -> None:
        """Stops the client without telling the listener (process shutdown or deletion)."""
        await self.stop()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None

    async def wipe(self) -> None:
        await self._wipe()

    # -- commands: plumbing ---------------------------------------------------------------------

    async def _fail_start(self, reason: str) -> None:
        """A start that raised: the client goes, and the listener hears that it closed
        (it had been told ``connecting``)."""
        await self._end()
        self._tell(Closed(reason))

    def _online_client(self) -> NeonizeClient:
        client = self._client
        if client is None or not self._online:
            raise NotConnected()
        return client

    async def _request_pairing_code(self, phone: str) -> None:
        """Asks for a pairing code once the client is talking to WhatsApp (its first QR).

        whatsmeow pairs by code only on a connected, unpaired client, which is exactly
        when it emits the first QR; that QR is not shown, as the owner asked for a code.
        """
        client, task = self._client, self._task
        assert client is not None and task is not None
        waiter = asyncio.ensure_future(self._first_signal.wait())
        try:
            await asyncio.wait({waiter, task}, timeout=self._pair_wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._online:
            return  # the device was linked already: nothing to pair
        if not self._first_signal.is_set():
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise engine_error(task.exception() or RuntimeError(), "connect")
            raise EngineError("WhatsApp did not answer in time", code="timeout", retryable=True)
        try:
            code = await client.PairPhone(
                phone, True, client_name=ClientName.LINUX, client_type=ClientType.CHROME
            )
        except NeonizeError as error:
            raise engine_error(error, "pair") from error
        self._tell(PairingCodeShown(str(code), phone))

    async def _launch(self) -> None:
        self._generation += 1
        generation = self._generation
        client_id = f"{self.session.key}#{generation}.{secrets.token_hex(4)}"
        database = await self._store.prepare(self.session, client_id)
        client = self._factory(database, client_id)
        self._databases[id(client)] = database
        self._subscribe(client, generation)
        self._client = client
        self._reset_link_state()
        proxy = self._proxy_for(self.session) if self._proxy_for is not None else None
        task = await client.connect(proxy_settings(proxy))
        self._task = task
        task.add_done_callback(partial(self._client_ended, generation))

    def _subscribe(self, client: NeonizeClient, generation: int) -> None:
        async def on_event(_client: Any, event: Any) -> None:
            await self._inbox.put(partial(self._on_event, generation, event, self._clock()))

        async def on_qr(_client: Any, code: bytes) -> None:
            await self._inbox.put(partial(self._on_qr, generation, code.decode(errors="replace")))

        for event_type in EVENT_TYPES:
            client.event(event_type)(on_event)
        client.event.qr(on_qr)

    def _client_ended(self, generation: int, task: asyncio.Task[Any]) -> None:
        """The Go client's thread returned: fine after a stop, a failure otherwise."""
        if task.cancelled() or (error := task.exception()) is None:
            return
        self._inbox.put_control(partial(self._on_client_failed, generation, str(error) or "client failed"))

    def _notify(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._inbox.put_control(partial(callback, *args))

    def _tell(self, happening: Happening) -> None:
        self._inbox.put_control(partial(self.listener.on, happening))

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name=f"neonize-{self.session.key}")

    async def _run_pump(self) -> None:
        def failed() -> None:  # the listener retries its saves: what reaches here is a bug
            log.exception("session %s: a neonize event could not be handled", self.session.key)

        await self._inbox.run(failed)

    async def _on_event(self, generation: int, event: Any, received_at: datetime) -> None:
        if generation != self._generation:
            return  # from a client that was stopped or replaced
        self._registered = True
        happening = translate(event, received_at)
        if happening is None:
            log.debug("session %s: %s dropped", self.session.key, type(event).__name__)
            return
        if isinstance(happening, Received) and isinstance(event, MessageEvent):
            self._recent.remember(happening.wa_id, happening.sender, quotable(event.Message))
        await self._dispatch(happening)

    async def _renew_pairing_code(self, generation: int) -> None:
        """A restarted, still unpaired client: the earlier code died with the old client."""
        phone = self._pair_phone
        if phone is None or generation != self._generation:
            return
        self._code_generation = generation
        try:
            await self._request_pairing_code(phone)
        except EngineError as error:
            log.warning("session %s: no new pairing code: %s", self.session.key, error)

    async def _release_store(self, client: NeonizeClient) -> None:
        database = self._databases.pop(id(client), None)
        if database is not None:
            await self._store.release(database)

    async def _wipe(self) -> None:
        self._me = None
        try:
            await self._store.wipe(self.session)
        except Exception as error:  # file system or database trouble: worth another try
            raise EngineError(f"could not delete the device: {error}", retryable=True) from error


def _phone_digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone.partition("@")[0])
    if not digits:
        raise EngineError(f"'{phone}' is not a phone number", code="invalid_phone")
    return digits
