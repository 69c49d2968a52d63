"""The engine contract, run against the neonize engine on a recording stand-in for
neonize's client (real neonize protobufs, no WhatsApp): ``Factory`` makes one per client
the engine starts; while ``down``, their Go threads fail at once (WhatsApp unreachable)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from neonize.proto import Neonize_pb2 as ev
from neonize.proto.Neonize_pb2 import MessageSource

from tests.contract.engine_contract import EngineContract, Harness, eventually
from tests.integration.test_neonize_engine import ANN, Factory, StandInClient, message_event
from warest.infra.engines.neonize import NeonizeEngine

UNREACHABLE = "failed to dial whatsapp web websocket: network is unreachable"


class UnreachableFactory(Factory):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __call__(self, database: str, client_id: str) -> StandInClient:
        client = super().__call__(database, client_id)
        if self.down:
            client.crash.set_result(UNREACHABLE)
        return client


class NeonizeHarness(Harness):
    def __init__(self, tmp_path: Path, suspend_after_s: float) -> None:
        self.factory = UnreachableFactory()
        self.engine = NeonizeEngine(
            str(tmp_path / "neonize.db"),
            client_factory=self.factory,
            reconnect_base_s=0.01,
            reconnect_max_s=0.02,
            suspend_after_s=suspend_after_s,
            suspended_retry_s=0.02,
        )
        self.phone = "628111"  # the stand-in client's get_me
        self.peer = "628123456789@s.whatsapp.net"  # ANN

    async def offer_qr(self) -> None:
        await eventually(lambda: bool(self.factory.clients))
        await self.factory.last.show_qr("2@contract-qr,abc")

    async def link(self) -> None:
        await self.factory.last.emit(ev.Connected(status=True))

    async def log_in_again(self) -> None:
        await self.link()

    async def receive_text(self, text: str) -> None:
        await self.factory.last.emit(message_event(text, wa_id="3EB0FROMPEER"))

    async def confirm_delivery(self, wa_id: str) -> None:
        receipt = ev.Receipt(
            MessageSource=MessageSource(Chat=ANN, Sender=ANN),
            MessageIDs=[wa_id],
            Timestamp=1_714_563_060,
            Type=ev.Receipt.DELIVERED,
        )
        await self.factory.last.emit(receipt)

    async def outage(self, seconds: float) -> None:
        """At least three failed restarts: each is a reconnect attempt the engine reports
        (the log still records one loss: the defect was one ``ConnectionLost`` each)."""
        self.factory.down = True
        clients_before = len(self.factory.clients)
        self.factory.last.crash.set_result(UNREACHABLE)
        await eventually(lambda: len(self.factory.clients) >= clients_before + 3)  # restarts keep failing
        await asyncio.sleep(seconds)
        self.factory.down = False
        restarted = len(self.factory.clients)
        await eventually(lambda: len(self.factory.clients) > restarted)  # the next one reaches WhatsApp
        await self.link()

    async def log_out_from_phone(self) -> None:
        await self.factory.last.emit(ev.LoggedOut(OnConnect=False, Reason=ev.LOGGED_OUT))

    async def close(self) -> None:
        await self.engine.close()


class TestNeonizeEngine(EngineContract):
    async def make_harness(self, tmp_path: Path, suspend_after_s: float) -> Harness:
        return NeonizeHarness(tmp_path, suspend_after_s)
