"""The engine contract, run against the sandbox engine and its simulated network."""

from __future__ import annotations

from pathlib import Path

from tests.contract.engine_contract import SESSION, EngineContract, Harness, eventually
from tests.unit.test_sandbox_settle import MemoryStore
from warest.infra.engines.sandbox.engine import SandboxConnection, SandboxEngine
from warest.infra.engines.sandbox.network import SandboxNetwork

PHONE, PEER = "6281000000001", "6281000000002"


class SandboxHarness(Harness):
    def __init__(self, network: SandboxNetwork) -> None:
        self.network = network
        self.engine = SandboxEngine(network)
        self.phone = PHONE
        self.peer = f"{PEER}@s.whatsapp.net"

    @property
    def connection(self) -> SandboxConnection:
        return self.network.connections[(SESSION.registry, SESSION.name)]

    async def offer_qr(self) -> None:
        pass  # the sandbox shows QR codes by itself

    async def link(self) -> None:
        await self.network.scan(SESSION.registry, SESSION.name, PHONE)

    async def log_in_again(self) -> None:
        pass  # a linked sandbox device logs in at start

    async def receive_text(self, text: str) -> None:
        await self.network.send(SESSION.registry, PEER, PHONE, text)

    async def confirm_delivery(self, wa_id: str) -> None:
        pass  # the peer's phone is on the network: it confirms by itself

    async def outage(self, seconds: float) -> None:
        await self.connection.inject("disconnect", {"reconnectAfterMs": seconds * 1000})
        assert not self.connection.connected
        await eventually(lambda: self.connection.connected, timeout=seconds + 5)

    async def log_out_from_phone(self) -> None:
        await self.connection.inject("logout", {})

    async def close(self) -> None:
        await self.engine.close()
        await self.network.close()


class TestSandboxEngine(EngineContract):
    async def make_harness(self, tmp_path: Path, suspend_after_s: float) -> Harness:
        network = SandboxNetwork(MemoryStore())  # type: ignore[arg-type]
        await network.create_account(SESSION.registry, PEER)
        return SandboxHarness(network)
