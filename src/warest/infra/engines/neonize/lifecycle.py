"""What a neonize connection does when its link changes: open, drop, log out, ban...

Split from ``connection`` so the port commands and the event-driven state machine can be
read apart. Every method here runs on the connection's pump (one at a time) or from the
reconnect task; ``NeonizeConnection`` supplies the hooks at the bottom of the class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from neonize.exc import NeonizeError

from warest.app.engine import EngineError, EngineListener, SessionRef
from warest.app.happenings import (
    Banned,
    Closed,
    Edited,
    Happening,
    LoggedOut,
    Me,
    Opened,
    QrShown,
    Receipt,
    Received,
    Reconnecting,
    Replaced,
    Revoked,
)
from warest.infra.engines.neonize.client import NeonizeClient
from warest.infra.engines.neonize.happenings import (
    LinkBanned,
    LinkFailed,
    LinkLoggedOut,
    LinkLost,
    LinkOpened,
    LinkReplaced,
    PairingFailed,
    PairingSucceeded,
    Translated,
)
from warest.infra.engines.neonize.translator import me_from_device

log = logging.getLogger("warest.engines.neonize")

STOP_WAIT_S = 10.0
"""How long a stop waits for goneonize's thread to return before leaving it behind."""


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """base, 2·base, 4·base... capped at max (attempt counts from 1)."""
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class RetryPlan:
    """When the next reconnect attempt is due: the back-off, and after ``suspend_after_s``
    of outage at least ``suspended_retry_s`` (the session is then recorded as suspended)."""

    backoff: Backoff
    suspend_after_s: float = 300.0
    suspended_retry_s: float = 120.0

    def delay(self, attempt: int, outage_s: float) -> float:
        delay = self.backoff.delay(attempt)
        if outage_s >= self.suspend_after_s:
            return max(delay, self.suspended_retry_s)
        return delay


class Lifecycle:
    session: SessionRef
    listener: EngineListener
    _lock: asyncio.Lock

    def __init__(
        self,
        reconnect_base_s: float,
        reconnect_max_s: float,
        qr_durations_s: tuple[float, float],
        qr_grace_s: float = 5.0,
        suspend_after_s: float = 300.0,
        suspended_retry_s: float = 120.0,
    ) -> None:
        backoff = Backoff(reconnect_base_s, reconnect_max_s)
        self._retry = RetryPlan(backoff, suspend_after_s, suspended_retry_s)
        self._qr_durations_s = qr_durations_s
        self._qr_grace_s = qr_grace_s
        self._client: NeonizeClient | None = None
        self._task: asyncio.Task[Any] | None = None
        self._generation = 0
        self._wanted = False  # the owner wants the session running
        self._online = False
        self._online_event = asyncio.Event()
        self._first_signal = asyncio.Event()  # first QR or login of the current client
        self._registered = False  # the current client has called back, so Go knows it
        self._logged_in = False  # the current client has been connected and logged in
        self._pair_phone: str | None = None
        self._code_generation = 0  # the client generation the last pairing code belongs to
        self._qr_count = 0
        self._qr_timer: asyncio.TimerHandle | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._me: Me | None = None

    # -- events -----------------------------------------------------------------------------

    async def _dispatch(self, happening: Translated) -> None:
        match happening:
            case Received() | Receipt() | Edited() | Revoked():
                await self.listener.on(happening)
            case LinkOpened():
                await self._opened()
            case LinkLost(reason=reason):
                self._set_online(False)
                if self._wanted:
                    self._begin_recovery(reason)
            case LinkLoggedOut(reason=reason):
                await self._end()
                try:
                    await self._wipe()  # whatsmeow deleted the device; this drops the store too
                except EngineError as error:
                    log.error("session %s: logged out, but the store stays: %s", self.session.key, error)
                await self.listener.on(LoggedOut(reason))
            case LinkReplaced(reason=reason):
                await self._end()
                await self.listener.on(Replaced(reason))
            case LinkBanned(reason=reason, until=until):
                await self._end()
                await self.listener.on(Banned(reason, until))
            case LinkFailed(reason=reason):
                await self._end()
                await self.listener.on(Closed(reason))
            case PairingSucceeded():
                self._cancel_qr_timer()  # login follows once whatsmeow has reconnected
                log.info("session %s paired as %s", self.session.key, happening.jid)
            case PairingFailed(error=error):
                await self._end()
                await self.listener.on(Closed(f"pairing_failed: {error}"))
            case _:
                # Presence, chat presence, groups, calls, history and undecryptable
                # messages: the port has no happening for them yet.
                log.debug("session %s: not delivered (not in the port yet): %s", self.session.key, happening)

    async def _opened(self) -> None:
        self._set_online(True)
        self._logged_in = True
        self._pair_phone = None
        self._first_signal.set()
        self._cancel_qr_timer()
        self._last_error = None
        client = self._client
        if client is None:
            return
        try:
            me = me_from_device(await client.get_me())
        except NeonizeError as error:
            log.error("session %s: connected, but get_me failed: %s", self.session.key, error)
            me = self._me
        if me is None:
            log.error("session %s: connected without a device JID", self.session.key)
            return
        self._me = me
        await self.listener.on(Opened(me))

    async def _on_qr(self, generation: int, code: str) -> None:
        if generation != self._generation:
            return
        self._registered = True
        self._qr_count += 1
        duration = self._qr_durations_s[0 if self._qr_count == 1 else 1]
        self._arm_qr_timer(generation, duration + self._qr_grace_s)
        self._first_signal.set()
        if self._pair_phone is None:
            await self.listener.on(QrShown(code, round(duration), self._qr_count))
        elif self._qr_count == 1 and self._code_generation != generation:
            # Pairing by code (the QR is not shown) on a client restarted by a reconnect.
            self._renewal = asyncio.create_task(self._renew_pairing_code(generation))

    async def _on_qr_timeout(self, generation: int) -> None:
        """No QR was scanned and whatsmeow stopped issuing codes: the login run is over."""
        if generation != self._generation or self._online:
            return
        await self._end()
        await self.listener.on(Closed("qr_timeout"))

    async def _on_client_failed(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        log.warning("session %s: neonize client ended: %s", self.session.key, reason)
        self._last_error = reason
        self._set_online(False)
        if self._wanted:
            self._begin_recovery(reason)

    # -- reconnects -------------------------------------------------------------------------

    def _begin_recovery(self, reason: str) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(reason))

    async def _recover(self, reason: str) -> None:
        """Reports every attempt to the listener (live status: it records the loss once)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while self._wanted and not self._online:
            attempt += 1
            delay = self._retry.delay(attempt, loop.time() - started)
            self._tell(Reconnecting(attempt, self._last_error or reason, delay))
            if await self._wait_online(delay):
                return
            async with self._lock:
                if not self._wanted or self._online:
                    return
                if not self._needs_restart():
                    continue  # whatsmeow is still reconnecting this client by itself
                try:
                    await self._shutdown()
                    await self._launch()
                except Exception as error:  # the next attempt reports it
                    log.warning("session %s: restart failed: %s", self.session.key, error)
                    self._last_error = str(error) or type(error).__name__

    def _needs_restart(self) -> bool:
        """Whether only a new client can bring the session back.

        whatsmeow retries a logged-in client forever by itself, and every new neonize
        client opens a new database pool (closed by ``_release_store`` when the client
        stops, as goneonize never closes it); so a client is replaced only when its Go
        thread has ended, or when it never logged in (whatsmeow does not reconnect those).
        """
        task = self._task
        return self._client is None or task is None or task.done() or not self._logged_in

    async def _wait_online(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._online_event.wait(), timeout)
        return self._online

    def _cancel_recovery(self) -> None:
        recovery, self._recovery = self._recovery, None
        if recovery is not None and recovery is not asyncio.current_task():
            recovery.cancel()

    # -- state --------------------------------------------------------------------------------

    def _set_online(self, online: bool) -> None:
        self._online = online
        if online:
            self._online_event.set()
        else:
            self._online_event.clear()

    def _reset_link_state(self) -> None:
        self._set_online(False)
        self._registered = False
        self._logged_in = False
        self._qr_count = 0
        self._first_signal.clear()

    def _arm_qr_timer(self, generation: int, delay: float) -> None:
        self._cancel_qr_timer()
        loop = asyncio.get_running_loop()
        self._qr_timer = loop.call_later(delay, self._notify, self._on_qr_timeout, generation)

    def _cancel_qr_timer(self) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
            self._qr_timer = None

    async def _end(self) -> None:
        """The session stops for good (until the next start): no reconnect, no client."""
        self._wanted = False
        self._cancel_recovery()
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Stops the current client (idempotent); its late events are ignored from now on."""
        client, task = self._client, self._task
        self._client, self._task = None, None
        self._generation += 1
        self._reset_link_state()
        self._cancel_qr_timer()
        if client is None:
            return
        try:
            await client.stop()
        except Exception as error:
            log.warning("session %s: stopping the client failed: %s", self.session.key, error)
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if not done:
                log.warning("session %s: the neonize thread did not end in time", self.session.key)
        try:
            await self._release_store(client)
        except Exception as error:
            log.warning("session %s: the client's store connections stay open: %s", self.session.key, error)

    # -- hooks supplied by NeonizeConnection ---------------------------------------------------

    async def _launch(self) -> None:
        raise NotImplementedError

    async def _wipe(self) -> None:
        raise NotImplementedError

    async def _release_store(self, client: NeonizeClient) -> None:
        """Closes what the stopped ``client`` opened on its device store (goneonize opens
        a database pool per client and never closes it)."""
        raise NotImplementedError

    async def _renew_pairing_code(self, generation: int) -> None:
        raise NotImplementedError

    def _notify(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        raise NotImplementedError

    def _tell(self, happening: Happening) -> None:
        """Reports ``happening`` to the listener behind what the inbox holds already."""
        raise NotImplementedError
