"""The simulated WhatsApp network: accounts, linked devices, routing, receipts, faults.

One network per server process, shared by every sandbox session, so two gateway
sessions (even of two tenants) can talk to each other. Its state is persisted in the
``sandbox_*`` tables, so linked sessions come back after a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from warest.app.engine import OutboundText, SendResult
from warest.app.errors import Unavailable
from warest.app.happenings import Receipt, Received
from warest.app.sandbox import FAULT_KINDS, InboxItem, SandboxAccount
from warest.domain.errors import AlreadyExists, InvalidValue, NotFound
from warest.domain.jid import LID, USER, Jid
from warest.infra.engines.sandbox import codes
from warest.infra.engines.sandbox.store import SandboxStore

if TYPE_CHECKING:
    from warest.infra.engines.sandbox.engine import SandboxConnection

log = logging.getLogger("warest.sandbox")


def _now() -> datetime:
    return datetime.now(UTC)


SETTLE_TIMEOUT_S = 10.0

Device = tuple[str, str]
"""A linked session: (registry, session id)."""


class Devices:
    """Which session is linked to which phone, both ways: routing a message finds the
    recipient's sessions without scanning every linked session of the server. A phone's
    sessions keep the order they were linked in (the network is deterministic)."""

    def __init__(self, links: dict[Device, str] | None = None) -> None:
        self._phone: dict[Device, str] = {}
        self._linked: defaultdict[str, dict[Device, None]] = defaultdict(dict)
        for device, phone in (links or {}).items():
            self.link(device, phone)

    def link(self, device: Device, phone: str) -> None:
        self.unlink(device)
        self._phone[device] = phone
        self._linked[phone][device] = None

    def unlink(self, device: Device) -> None:
        phone = self._phone.pop(device, None)
        if phone is not None:
            linked = self._linked[phone]
            linked.pop(device, None)
            if not linked:
                del self._linked[phone]

    def phone_of(self, device: Device) -> str | None:
        return self._phone.get(device)

    def of(self, phone: str) -> list[Device]:
        """The sessions linked to ``phone`` (none for an external account)."""
        linked = self._linked.get(phone)
        return list(linked) if linked else []


class SandboxNetwork:
    def __init__(
        self,
        store: SandboxStore,
        *,
        qr_duration_s: int = 20,
        qr_max_rotations: int = 10,
        default_country_code: str = "62",
    ) -> None:
        self.store = store
        self.country_code = default_country_code
        self.qr_duration_s = qr_duration_s
        self.qr_max_rotations = qr_max_rotations
        self.accounts: dict[str, SandboxAccount] = {}
        self._by_lid: dict[str, str] = {}
        self.devices = Devices()
        self.connections: dict[tuple[str, str], SandboxConnection] = {}
        self.contacts: defaultdict[str, set[str]] = defaultdict(set)  # phone -> phones it talked with
        self._counter = itertools.count(1)
        self._run = secrets.token_hex(8)  # ids of this process never repeat those of an earlier one
        self._inbox_buffer: deque[tuple[str, InboxItem]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        for account in await self.store.accounts():
            self._index(account)
        self.devices = Devices(await self.store.devices())
        self._flusher = asyncio.create_task(self._flush_loop(), name="sandbox-inbox")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()

    def _index(self, account: SandboxAccount) -> None:
        self.accounts[account.phone] = account
        self._by_lid[account.lid] = account.phone

    # -- accounts ------------------------------------------------------------------

    async def create_account(
        self,
        registry: str,
        phone: str,
        *,
        push_name: str | None = None,
        lid: str | None = None,
        about: str = "",
        business: dict[str, Any] | None = None,
        picture: str | None = None,
        auto_read: bool = False,
    ) -> SandboxAccount:
        jid = Jid.parse(phone, self.country_code, "phone")
        if jid.server != USER:
            raise InvalidValue("phone", "must be a phone number")
        if lid is not None and not (lid.isascii() and lid.isdigit() and len(lid) <= 20):
            raise InvalidValue("lid", "must be 1-20 digits (0-9)")
        account = SandboxAccount(
            phone=jid.user,
            lid=lid or codes.lid_for(jid.user),
            push_name=push_name or jid.user,
            about=about,
            business=business,
            picture=picture,
            auto_read=auto_read,
            owner=registry,
        )
        async with self._lock:
            if account.phone in self.accounts or account.lid in self._by_lid:
                raise AlreadyExists(f"phone {account.phone} (or its LID) is already on the network")
            if not await self.store.add_account(account):
                raise AlreadyExists(f"phone {account.phone} (or its LID) is already on the network")
            self._index(account)
        return account

    async def account(self, registry: str, phone: str) -> SandboxAccount:
        return self.owned_account(registry, phone)

    def owned_account(self, registry: str, phone: str) -> SandboxAccount:
        """An account the caller created; any other is reported as missing."""
        try:
            jid = Jid.parse(phone, self.country_code, "phone")
        except InvalidValue:
            raise NotFound(f"account {phone} not found") from None
        account = (
            self.accounts.get(jid.user)
            if jid.server == USER
            else self.accounts.get(self._by_lid.get(jid.user, ""))
        )
        if account is None or account.owner != registry:
            raise NotFound(f"account {phone} not found")
        return account

    def resolve(self, jid: Jid) -> SandboxAccount | None:
        if jid.server == USER:
            return self.accounts.get(jid.user)
        if jid.server == LID:
            phone = self._by_lid.get(jid.user)
            return self.accounts.get(phone) if phone else None
        return None

    # -- linking -------------------------------------------------------------------

    def connection_of(self, registry: str, session: str) -> SandboxConnection:
        connection = self.connections.get((registry, session))
        if connection is None:
            raise NotFound(f"session '{session}' is not running")
        return connection

    async def scan(self, registry: str, session: str, phone: str) -> SandboxAccount:
        connection = self.connection_of(registry, session)
        if not connection.waiting_for_qr:
            raise InvalidValue("sessionId", "the session is not showing a QR code")
        try:
            account = self.owned_account(registry, phone)
        except NotFound:
            if Jid.parse(phone, self.country_code, "phone").user in self.accounts:
                raise
            account = await self.create_account(registry, phone)
        await self.link(connection, account)
        return account

    async def pair(self, registry: str, phone: str, code: str) -> str:
        wanted = code.strip().upper().replace(" ", "")
        if len(wanted) == 8:
            wanted = wanted[:4] + "-" + wanted[4:]
        user = Jid.parse(phone, self.country_code, "phone").user
        for (conn_registry, session), connection in self.connections.items():
            if conn_registry == registry and connection.pairing == (user, wanted):
                account = self.accounts.get(user) or await self.create_account(registry, user)
                if account.owner not in (None, registry):
                    break
                await self.link(connection, account)
                return session
        raise NotFound("no session of yours is waiting for that pairing code on that phone")

    async def link(self, connection: SandboxConnection, account: SandboxAccount) -> None:
        key = (connection.ref.registry, connection.ref.name)
        await self.store.link(*key, account.phone)
        self.devices.link(key, account.phone)
        await connection.linked(account)

    async def unlink(self, registry: str, session: str) -> None:
        await self.store.unlink(registry, session)
        self.devices.unlink((registry, session))

    def device_account(self, registry: str, session: str) -> SandboxAccount | None:
        phone = self.devices.phone_of((registry, session))
        return self.accounts.get(phone) if phone else None

    # -- routing -------------------------------------------------------------------

    def open_connections_of(self, phone: str) -> list[SandboxConnection]:
        connections = (self.connections.get(device) for device in self.devices.of(phone))
        return [c for c in connections if c is not None and c.is_open]

    async def route(
        self, sender: SandboxAccount, origin: SandboxConnection | None, message: OutboundText
    ) -> SendResult:
        """Delivers a message from ``sender`` and schedules the receipts back to ``origin``.

        As on WhatsApp, the sender chooses the message id, and a recipient that already has
        that id from that sender ignores the second delivery: an external account's inbox
        keeps the first (``sandbox_inbox`` is unique on it, across restarts); a gateway
        session drops it itself, as it drops any redelivery. Receipts come for both."""
        to = Jid.parse(message.to, self.country_code, "to")
        sent_at = _now()
        result = SendResult(wa_id=message.wa_id, sent_at=sent_at)
        recipient = self.resolve(to)
        self.contacts[sender.phone].add(to.user)
        if origin is not None:
            origin.push(Receipt(str(to), (result.wa_id,), "server", sent_at))
        if recipient is None:
            return result  # not on WhatsApp (or a group, not simulated yet): one tick only
        self.contacts[recipient.phone].add(sender.phone)
        chat = f"{sender.phone}@{USER}"
        inbound = Received(
            wa_id=result.wa_id,
            chat=chat,
            sender=chat,
            text=message.text,
            push_name=sender.push_name,
            mentions=message.mentions,
            quoted_id=message.reply_to,
            sent_at=sent_at,
        )
        targets = [c for c in self.open_connections_of(recipient.phone) if c is not origin]
        for target in targets:
            target.deliver(inbound)
        external = not self.devices.of(recipient.phone)
        if external:
            self._inbox_buffer.append(
                (recipient.phone, InboxItem(result.wa_id, chat, chat, message.text, "text", sent_at))
            )
        if origin is not None and (targets or external):
            origin.push(Receipt(str(to), (result.wa_id,), "delivered", _now(), by=recipient.phone))
            if external and recipient.auto_read:
                origin.push(Receipt(str(to), (result.wa_id,), "read", _now(), by=recipient.phone))
        return result

    def next_message_id(self, phone: str) -> str:
        """A phone-style message id for something ``phone`` sends (unique across restarts)."""
        return codes.inbound_id(phone, f"{self._run}:{next(self._counter)}")

    def relay(
        self,
        sender: SandboxAccount,
        origin: SandboxConnection | None,
        chat: str,
        step: Callable[[SandboxConnection, str], None],
    ) -> None:
        """Hands an action on a message of ``chat`` to the other side's open sessions;
        ``step(connection, chat as that side sees it)`` queues what they must hear."""
        recipient = self.resolve(Jid.parse(chat, self.country_code, "chat"))
        if recipient is None:
            return
        seen_as = f"{sender.phone}@{USER}"
        for target in self.open_connections_of(recipient.phone):
            if target is not origin:
                step(target, seen_as)

    def read(self, reader: SandboxAccount, refs: list[tuple[str, str]]) -> None:
        """Read receipts from ``reader`` to the senders of ``refs`` (sender JID, message id)."""
        by_sender: dict[str, list[str]] = {}
        for sender, wa_id in refs:
            by_sender.setdefault(sender, []).append(wa_id)
        chat = f"{reader.phone}@{USER}"
        for sender, ids in by_sender.items():
            account = self.resolve(Jid.parse(sender, self.country_code, "sender"))
            if account is None:
                continue
            for connection in self.open_connections_of(account.phone):
                connection.push(Receipt(chat, tuple(ids), "read", _now(), by=reader.phone))

    async def send(
        self, registry: str, sender: str, to: str, text: str, *, quoted_id: str | None = None
    ) -> str:
        """An external account (owned by ``registry``) sends a text."""
        if not text:
            raise InvalidValue("text", "must not be empty")
        account = self.owned_account(registry, sender)
        wa_id = self.next_message_id(account.phone)
        to_jid = Jid.parse(to, self.country_code, "to")
        outbound = OutboundText(to=str(to_jid), wa_id=wa_id, text=text, reply_to=quoted_id)
        await self.route(account, None, outbound)
        recipient = self.resolve(to_jid)
        if recipient is not None:
            # Answer once the receiving sessions recorded it: an accepted message is in the log.
            sessions = [c.settled() for c in self.open_connections_of(recipient.phone)]
            try:
                async with asyncio.timeout(SETTLE_TIMEOUT_S):
                    await asyncio.gather(*sessions)
            except TimeoutError:
                raise Unavailable(
                    f"message {wa_id} was sent, but a receiving session did not record it"
                    f" within {SETTLE_TIMEOUT_S:.0f} s"
                ) from None
        return wa_id

    def cold(self, sender_phone: str, to: Jid) -> bool:
        return to.user not in self.contacts[sender_phone]

    # -- faults --------------------------------------------------------------------

    async def fault(
        self, registry: str, kind: str, *, session: str | None, phone: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        if kind not in FAULT_KINDS:
            raise InvalidValue("kind", f"must be one of {', '.join(FAULT_KINDS)}")
        targets: list[SandboxConnection] = []
        if session:
            targets = [self.connection_of(registry, session)]
        elif phone:
            account = self.owned_account(registry, phone)
            targets = [
                self.connections[device]
                for device in self.devices.of(account.phone)
                if device in self.connections and device[0] == registry
            ]
        else:
            raise InvalidValue("sessionId", "give sessionId or phone")
        if not targets:
            raise NotFound("no running session matches")
        for connection in targets:
            await connection.inject(kind, options)
        return {"kind": kind, "sessions": [c.ref.name for c in targets]}

    # -- inboxes -------------------------------------------------------------------

    async def inbox(self, registry: str, phone: str, limit: int = 100) -> list[InboxItem]:
        account = self.owned_account(registry, phone)
        await self._flush()
        return await self.store.inbox(account.phone, limit)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            try:
                await self._flush()
            except Exception:
                log.exception("sandbox inbox flush failed")

    async def _flush(self) -> None:
        """Writes what external accounts received. One flush at a time: a reader's flush
        waits for the batch the background one has taken out of the buffer but not stored."""
        async with self._flushing:
            while self._inbox_buffer:
                batch = list(self._inbox_buffer)
                self._inbox_buffer.clear()
                try:
                    await self.store.record_inbox(batch)
                except BaseException:
                    self._inbox_buffer.extendleft(reversed(batch))  # kept, in order, for the next flush
                    raise


def ban_until(seconds: float) -> datetime:
    return _now() + timedelta(seconds=seconds)
