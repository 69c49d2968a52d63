"""The sandbox engine: session connections to the simulated network.

Each connection reports its happenings to its listener through one ordered queue (lifecycle
changes, inbound messages and receipts keep their order), which is also where the ordering
faults (duplicate and out-of-order delivery) are applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

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
from warest.app.sandbox import SandboxAccount
from warest.domain.jid import Jid
from warest.infra.engines.sandbox import codes
from warest.infra.engines.sandbox.network import SandboxNetwork, ban_until
from warest.infra.engines.sandbox.network import _now as now

log = logging.getLogger("warest.sandbox")

Step = Callable[[], Awaitable[None]]


class SandboxConnection:
    def __init__(self, ref: SessionRef, listener: EngineListener, network: SandboxNetwork) -> None:
        self.ref = ref
        self.listener = listener
        self.network = network
        self.state = "idle"
        self.pairing: tuple[str, str] | None = None
        self._starts = 0
        self._qr_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._steps: asyncio.Queue[Step] = asyncio.Queue()
        self._consumer = asyncio.create_task(self._consume(), name=f"sandbox-{ref.key}")
        self._fail_cold: int = 0
        self._send_delay_s: float = 0.0
        self._duplicates: int = 0
        self._reorder: int = 0
        self._held: list[Received] = []

    # -- state -----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def waiting_for_qr(self) -> bool:
        return self.state == "qr"

    @property
    def connected(self) -> bool:
        return self.is_open

    @property
    def account(self) -> SandboxAccount | None:
        return self.network.device_account(self.ref.registry, self.ref.name)

    # -- Connection ------------------------------------------------------------------

    async def start(self, pair_phone: str | None = None) -> None:
        self._cancel_qr()
        self._starts += 1
        self.pairing = None
        account = self.account
        if account is not None and pair_phone is None:
            self.state = "connecting"
            self.report(Connecting())
            self._open(account)
            return
        if pair_phone is not None:
            phone = Jid.parse(pair_phone, self.network.country_code, "phone").user
            code = codes.pairing_code(self.ref.key, phone, self._starts)
            self.state = "pairing"
            self.pairing = (phone, code)
            self.report(PairingCodeShown(code, phone))
            return
        self.state = "qr"
        self._qr_task = asyncio.create_task(self._rotate_qr(self._starts), name=f"qr-{self.ref.key}")

    async def stop(self) -> None:
        self._cancel_qr()
        self.pairing = None
        self.state = "closed"

    async def logout(self) -> None:
        await self.stop()
        await self.network.unlink(self.ref.registry, self.ref.name)

    async def send_text(self, message: OutboundText) -> SendResult:
        if self.state == "banned":
            raise EngineError("the account is temporarily banned", code="banned", retryable=False)
        account = self.account
        if not self.is_open or account is None:
            raise NotConnected()
        if self._send_delay_s:
            await asyncio.sleep(self._send_delay_s)
            if not self.is_open:
                raise NotConnected()
        to = Jid.parse(message.to, self.network.country_code, "to")
        if self._fail_cold and self.network.cold(account.phone, to):
            self._fail_cold -= 1
            raise EngineError("error 463: the recipient is not a contact yet", code="463", retryable=False)
        return await self.network.route(account, self, message)

    async def send_presence(self, to: str, state: str) -> None:
        if not self.is_open:
            raise NotConnected()

    async def send_reaction(self, target: MessageRef, emoji: str) -> None:
        account = self._account_online()
        wa_id = self.network.next_message_id(account.phone)
        at = now()

        def step(connection: SandboxConnection, chat: str) -> None:
            connection.deliver(
                Received(
                    wa_id=wa_id,
                    chat=chat,
                    sender=chat,
                    kind="reaction",
                    text=emoji,
                    quoted_id=target.wa_id,
                    push_name=account.push_name,
                    sent_at=at,
                )
            )

        self.network.relay(account, self, target.chat, step)

    async def send_edit(self, target: MessageRef, text: str) -> None:
        account = self._account_online()
        at = now()
        self.network.relay(
            account,
            self,
            target.chat,
            lambda c, chat: c.report(Edited(chat, target.wa_id, chat, text, at)),
        )

    async def send_revoke(self, target: MessageRef) -> None:
        account = self._account_online()
        at = now()
        self.network.relay(
            account,
            self,
            target.chat,
            lambda c, chat: c.report(Revoked(chat, target.wa_id, chat, at)),
        )

    async def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        account = self._account_online()
        self.network.read(account, [(m.sender, m.wa_id) for m in messages])

    def _account_online(self) -> SandboxAccount:
        account = self.account
        if not self.is_open or account is None:
            raise NotConnected()
        return account

    def report(self, happening: Happening) -> None:
        """Tells the listener, behind everything already reported (keeps the order)."""
        self._queue(partial(self.listener.on, happening))

    async def device(self) -> Device | None:
        account = self.account
        if account is None:
            return None
        return Device(
            name=account.push_name, phone=account.phone, platform="sandbox", extra={"lid": account.lid}
        )

    # -- called by the network ---------------------------------------------------------

    async def linked(self, account: SandboxAccount) -> None:
        self._cancel_qr()
        self.pairing = None
        self.state = "connecting"
        self.report(Connecting())
        self._open(account)

    def push(self, receipt: Receipt) -> None:
        self.report(receipt)

    def deliver(self, message: Received) -> None:
        if self._reorder:
            self._held.append(message)
            if len(self._held) >= self._reorder:
                held, self._held, self._reorder = self._held, [], 0
                for item in reversed(held):
                    self._deliver_now(item)
            return
        self._deliver_now(message)

    def _deliver_now(self, message: Received) -> None:
        self.report(message)
        if self._duplicates:
            self._duplicates -= 1
            self.report(message)

    async def inject(self, kind: str, options: dict[str, Any]) -> None:
        """Applies a fault (see ``warest.app.sandbox.FAULT_KINDS``)."""
        if kind == "logout":
            await self.logout()
            self.report(LoggedOut("logged out from the phone"))
        elif kind == "disconnect":
            delay = float(options.get("reconnectAfterMs", 300)) / 1000
            self.state = "reconnecting"
            self.report(Reconnecting(1, "connection lost", delay))
            self._later(delay, self._reconnect)
        elif kind == "stream_replaced":
            await self.stop()
            self.report(Replaced("stream replaced: logged in elsewhere"))
        elif kind == "temp_ban":
            seconds = float(options.get("seconds", 60))
            until = ban_until(seconds)
            self.state = "banned"
            self.report(Banned("temporary ban", until))
            self._later(seconds, self._reconnect)
        elif kind == "error_463":
            self._fail_cold += int(options.get("count", 1))
        elif kind == "duplicate":
            self._duplicates += int(options.get("count", 1))
        elif kind == "out_of_order":
            self._reorder = max(2, int(options.get("count", 2)))
        elif kind == "slow":
            self._send_delay_s = max(0.0, float(options.get("delayMs", 1000)) / 1000)

    # -- internals ----------------------------------------------------------------------

    def _open(self, account: SandboxAccount) -> None:
        me = Me(jid=account.jid, lid=f"{account.lid}@lid", push_name=account.push_name)

        async def opened() -> None:
            self.state = "open"
            await self.listener.on(Opened(me))

        self._queue(opened)

    async def _reconnect(self) -> None:
        account = self.account
        if self.state in ("reconnecting", "banned") and account is not None:
            self.state = "connecting"
            self.report(Connecting())
            self._open(account)

    async def _rotate_qr(self, start: int) -> None:
        duration = self.network.qr_duration_s
        for attempt in range(1, self.network.qr_max_rotations + 1):
            qr = codes.qr_string(self.ref.key, start, attempt)
            self.report(QrShown(qr, duration, attempt))
            await asyncio.sleep(duration)
        self.state = "closed"
        self.report(Closed("QR code not scanned in time"))

    def _cancel_qr(self) -> None:
        if self._qr_task is not None:
            self._qr_task.cancel()
            self._qr_task = None

    def _later(self, delay: float, action: Step) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await action()

        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def _queue(self, step: Step) -> None:
        self._steps.put_nowait(step)

    async def settled(self) -> None:
        """Returns once the session has handled everything queued for it so far (steps run
        in order: a marker step behind them resolves this)."""
        done = asyncio.get_running_loop().create_future()

        async def marker() -> None:
            if not done.done():
                done.set_result(None)

        self._queue(marker)
        await done

    async def _consume(self) -> None:
        while True:
            step = await self._steps.get()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sandbox session %s: listener failed", self.ref.key)

    async def close(self) -> None:
        self._cancel_qr()
        for task in [self._consumer, *self._timers]:
            task.cancel()
        await asyncio.gather(self._consumer, *self._timers, return_exceptions=True)


class SandboxEngine:
    name = "sandbox"

    def __init__(self, network: SandboxNetwork) -> None:
        self.network = network

    def connection(self, session: SessionRef, listener: EngineListener) -> SandboxConnection:
        key = (session.registry, session.name)
        existing = self.network.connections.get(key)
        if existing is not None and existing.listener is listener:
            return existing
        connection = SandboxConnection(session, listener, self.network)
        self.network.connections[key] = connection
        return connection

    async def forget(self, session: SessionRef) -> None:
        connection = self.network.connections.pop((session.registry, session.name), None)
        if connection is not None:
            await connection.close()
        await self.network.unlink(session.registry, session.name)

    async def close(self) -> None:
        for connection in list(self.network.connections.values()):
            await connection.close()
        self.network.connections.clear()
