"""The slice of neonize's asyncio client the connection uses, and how one is made.

Naming the slice as a Protocol keeps the connection honest about what it needs from
``neonize.aioze.client.NewAClient`` and lets tests pass a recording stand-in through
the engine's ``client_factory`` without calling into the Go library or the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from neonize._binder import ProxySettings
from neonize.aioze.client import NewAClient
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps

EventHandler = Callable[[Any, Any], Coroutine[Any, Any, None]]
"""``handler(client, event)``: neonize schedules it on the loop for every subscribed event."""

QrHandler = Callable[[Any, bytes], Coroutine[Any, Any, None]]
"""``handler(client, code)``: one login QR code, called again as the code rotates."""


class EventRegistry(Protocol):
    """``client.event``: ``client.event(EventClass)(handler)`` subscribes, ``.qr(f)`` too."""

    def __call__(self, event: type[Any], /) -> Callable[[EventHandler], None]: ...

    def qr(self, f: QrHandler, /) -> None: ...


class NeonizeClient(Protocol):
    """What NeonizeConnection calls on ``NewAClient`` (same names and arguments)."""

    event: EventRegistry

    async def connect(self, proxy_settings: Any = None) -> asyncio.Task[Any]:
        """Starts the Go client in a worker thread; returns the task that runs it.

        The task ends when the client is stopped, or raises NeonizeError when the Go side
        could not start (database, network). It must not be awaited to "connect".
        """
        ...

    async def stop(self) -> None:
        """Disconnects and releases the Go client (keeps the device in the store)."""
        ...

    async def logout(self) -> None: ...

    async def send_message(self, to: Any, message: Any) -> Any: ...

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None: ...

    async def PairPhone(  # noqa: N802 - neonize's name
        self,
        phone: str,
        show_push_notification: bool,
        client_name: Any = ...,
        client_type: Any = None,
    ) -> str: ...

    async def get_me(self) -> Any: ...

    async def build_reaction(self, chat: Any, sender: Any, message_id: str, reaction: str) -> Any: ...

    async def edit_message(self, chat: Any, message_id: str, new_message: Any) -> Any: ...

    async def revoke_message(self, chat: Any, sender: Any, message_id: str) -> Any: ...

    async def mark_read(self, *message_ids: str, chat: Any, sender: Any, receipt: Any) -> Any: ...


ClientFactory = Callable[[str, str], NeonizeClient]
"""``factory(database, client_id)``: a new, unconnected client on that device database."""

DEVICE_OS = "warest"
"""The name the phone shows under "Linked devices"."""


def new_aclient(database: str, client_id: str) -> NeonizeClient:
    """A real ``NewAClient``.

    ``database`` becomes neonize's ``name``, which goneonize opens as the whatsmeow store
    (a postgres URL when it starts with "postgres", else a SQLite file); ``client_id`` is
    the key of the Go-side client map and must be unique per live client.
    """
    # CHROME keeps PairPhone's client type consistent: neonize derives it from this value.
    props = DeviceProps(os=DEVICE_OS, platformType=DeviceProps.CHROME)
    client: NeonizeClient = NewAClient(database, props=props, uuid=client_id)
    return client


def proxy_settings(address: str | None) -> Any:
    """neonize's ProxySettings for ``address`` (socks5:// or http://), or None for none."""
    return ProxySettings(proxy_address=address) if address else None
