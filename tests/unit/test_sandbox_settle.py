"""The sandbox control API's ``send`` answers only once the receiving session has handled the
message (its listener returned: for a real runtime, the Received event is in the log); and an
inbox read includes the inbox batch being stored when it came."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from warest.app.engine import SessionRef
from warest.app.errors import Unavailable
from warest.app.happenings import Happening, Received
from warest.app.sandbox import InboxItem, SandboxAccount
from warest.infra.engines.sandbox import network as network_module
from warest.infra.engines.sandbox.engine import SandboxEngine
from warest.infra.engines.sandbox.network import SandboxNetwork


class MemoryStore:
    """What the network keeps in PostgreSQL, in memory (the network's own logic is under test)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, InboxItem]] = []

    async def accounts(self) -> list[SandboxAccount]:
        return []

    async def devices(self) -> dict[tuple[str, str], str]:
        return {}

    async def add_account(self, account: SandboxAccount) -> bool:
        return True

    async def link(self, registry: str, session: str, phone: str) -> None:
        pass

    async def unlink(self, registry: str, session: str) -> None:
        pass

    async def record_inbox(self, items: list[tuple[str, InboxItem]]) -> None:
        self.received.extend(items)

    async def inbox(self, phone: str, limit: int) -> list[InboxItem]:
        return [item for owner, item in self.received if owner == phone][:limit]


class SlowListener:
    """A session runtime whose recording of an inbound message takes ``delay_s``; every other
    report is accepted and ignored."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.recorded: list[str] = []

    async def on(self, happening: Happening) -> None:
        if isinstance(happening, Received):
            await asyncio.sleep(self.delay_s)
            self.recorded.append(happening.wa_id)


async def linked_session(network: SandboxNetwork, listener: Any, phone: str) -> None:
    connection = SandboxEngine(network).connection(SessionRef("REG", "main"), listener)
    await connection.start()
    await network.scan("REG", "main", phone)
    await connection.settled()  # the login's steps have run: the session is open
    assert connection.is_open


@pytest.fixture
async def network() -> Any:
    sandbox = SandboxNetwork(MemoryStore())  # type: ignore[arg-type]
    yield sandbox
    for connection in list(sandbox.connections.values()):
        await connection.close()
    await sandbox.close()


async def test_send_returns_after_the_session_recorded_the_message(network: SandboxNetwork) -> None:
    listener = SlowListener(delay_s=0.3)
    await linked_session(network, listener, "6281000000001")
    await network.create_account("REG", "6281000000002")
    wa_id = await network.send("REG", "6281000000002", "6281000000001", "halo")
    assert listener.recorded == [wa_id]  # not "eventually": already, when send returned


async def test_a_session_that_does_not_record_in_time_is_an_error_not_a_silent_ok(
    network: SandboxNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network_module, "SETTLE_TIMEOUT_S", 0.1)
    listener = SlowListener(delay_s=5)
    await linked_session(network, listener, "6281000000001")
    await network.create_account("REG", "6281000000002")
    with pytest.raises(Unavailable, match="did not record it"):
        await network.send("REG", "6281000000002", "6281000000001", "halo")


async def test_an_inbox_read_waits_for_the_batch_being_stored() -> None:
    """The background flush takes the whole buffer before it writes: a read that came
    meanwhile must wait for that write, not find the buffer empty and read without it."""
    store = SlowInboxStore()
    network = SandboxNetwork(store)  # type: ignore[arg-type]
    await network.load()
    try:
        await network.create_account("REG", "6281000000001")
        await network.create_account("REG", "6281000000002")
        await network.send("REG", "6281000000001", "6281000000002", "hello")
        await asyncio.wait_for(store.writing.wait(), 5)  # the background flush has taken the batch
        read = asyncio.create_task(network.inbox("REG", "6281000000002"))
        await asyncio.sleep(0.05)
        assert not read.done()  # waiting for the write in flight
        store.release.set()
        assert [item.text for item in await read] == ["hello"]
    finally:
        store.release.set()
        await network.close()


class SlowInboxStore(MemoryStore):
    """Inbox writes wait for ``release``; reads see what was written."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    async def record_inbox(self, items: list[tuple[str, InboxItem]]) -> None:
        self.writing.set()
        await self.release.wait()
        await super().record_inbox(items)
