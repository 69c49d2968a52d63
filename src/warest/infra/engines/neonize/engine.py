"""NeonizeEngine: real WhatsApp through whatsmeow, by way of neonize's asyncio client.

One ``NewAClient`` per session, each on its own device store (see ``store``); the
connection objects are kept per session so ``forget`` and ``close`` can reach them.
"""

from __future__ import annotations

from warest.app.engine import EngineListener, SessionRef
from warest.infra.engines.neonize.client import ClientFactory, new_aclient
from warest.infra.engines.neonize.connection import NeonizeConnection, ProxyFor
from warest.infra.engines.neonize.store import DeviceStore
from warest.infra.engines.neonize.store import device_store as store_for_setting

__all__ = ["NeonizeConnection", "NeonizeEngine"]


class NeonizeEngine:
    name = "neonize"

    def __init__(
        self,
        device_store: str,
        proxy_for: ProxyFor | None = None,
        reconnect_base_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        client_factory: ClientFactory = new_aclient,
        store: DeviceStore | None = None,
        suspend_after_s: float = 300.0,
        suspended_retry_s: float = 120.0,
    ) -> None:
        """``device_store``: a postgres URL ("postgres..." / "postgresql://...") or a SQLite
        file path; ``proxy_for(session)``: that session's proxy URL or None; ``store``
        replaces the store derived from ``device_store`` (tests, custom layouts)."""
        self.store: DeviceStore = store if store is not None else store_for_setting(device_store)
        self._proxy_for = proxy_for
        self._reconnect = (reconnect_base_s, reconnect_max_s)
        self._suspend = (suspend_after_s, suspended_retry_s)
        self._factory = client_factory
        self._connections: dict[str, NeonizeConnection] = {}

    def connection(self, session: SessionRef, listener: EngineListener) -> NeonizeConnection:
        """The session's connection; asking again rebinds the existing one to ``listener``
        (two clients on one device would knock each other off WhatsApp)."""
        existing = self._connections.get(session.key)
        if existing is not None:
            existing.listener = listener
            return existing
        connection = NeonizeConnection(
            session,
            listener,
            store=self.store,
            client_factory=self._factory,
            proxy_for=self._proxy_for,
            reconnect_base_s=self._reconnect[0],
            reconnect_max_s=self._reconnect[1],
            suspend_after_s=self._suspend[0],
            suspended_retry_s=self._suspend[1],
        )
        self._connections[session.key] = connection
        return connection

    async def forget(self, session: SessionRef) -> None:
        """Stops the session's client if one runs, then deletes its device store.

        This does not unlink the device on WhatsApp (``logout`` does): the phone keeps
        listing it until it is removed there or WhatsApp expires it.
        """
        connection = self._connections.pop(session.key, None)
        if connection is not None:
            await connection.close()
            await connection.wipe()
        else:
            await self.store.wipe(session)

    async def close(self) -> None:
        """Stops every client, keeping their devices (sessions resume on the next start)."""
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.close()
