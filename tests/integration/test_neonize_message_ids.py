"""Message ids on the neonize engine, through the recording stand-in for NewAClient and real
neonize protobufs: whatsmeow gives every outbound message an id of its own, the runtime
claims that id for the message with its ``Sent``, and WhatsApp's receipts for it are applied
from the event store while the read models know nothing yet."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from neonize.aioze.client import NewAClient
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.Neonize_pb2 import MessageSource
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from tests.fakes import InMemoryEventStore
from tests.integration.test_neonize_engine import ANN, SESSION, Factory, StandInClient
from tests.unit.test_message_wa_ids import QUICK, BehindReadModels, wait_for
from warest.app.engine import OutboundText
from warest.app.outbound import Job
from warest.app.runtime import SessionRuntime
from warest.domain import ids
from warest.domain.messages import Message, Status
from warest.domain.sessions import Session
from warest.infra.engines.neonize import NeonizeConnection
from warest.infra.engines.neonize.store import SqliteDeviceStore

TO = "628123456789@s.whatsapp.net"


class NeonizeOn:
    """The engine port: NeonizeConnections on the stand-in client factory."""

    name = "neonize"

    def __init__(self, tmp_path: Path) -> None:
        self.factory = Factory()
        self.tmp_path = tmp_path

    def connection(self, ref: Any, listener: Any) -> NeonizeConnection:
        return NeonizeConnection(
            ref, listener, store=SqliteDeviceStore(self.tmp_path / "neonize.db"), client_factory=self.factory
        )

    async def forget(self, session: Any) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_whatsapps_id_is_claimed_and_its_receipts_apply_without_read_models(tmp_path: Path) -> None:
    engine = NeonizeOn(tmp_path)
    store = InMemoryEventStore()
    await store.save(Session.create(SESSION.registry, SESSION.name, None, True, "neonize"))
    runtime = SessionRuntime(SESSION, engine, store, BehindReadModels(store), QUICK, lambda _r: None)
    await runtime.connection.start()
    client: StandInClient = engine.factory.last
    await client.emit(ev.Connected(status=True))
    await wait_for(lambda: runtime.queue.is_online)

    message = Message.queue(
        SESSION.registry, SESSION.name, TO, "3EB0QUEUED0000000000AA", "hi", [], None, None
    )
    await store.save(message)
    runtime.remember(message)
    job = Job(message.id, OutboundText(TO, message.wa_id, "hi"))
    runtime.queue.put(job)
    await asyncio.wait_for(job.done, 5)
    name, _, sent = client.calls[-1]
    assert name == "send_message" and sent == e2e.Message(conversation="hi")

    # whatsmeow chose "3EB0SENT": the Sent names it, and a claim of it names the message.
    [_queued, recorded] = store.events(message.id)
    assert isinstance(recorded, Message.Sent) and recorded.wa_id == "3EB0SENT"
    claim = await store.get(ids.wa_id_claim_id(SESSION.registry, SESSION.name, "3EB0SENT"))
    assert claim is not None and claim.owner_id == message.id

    # A later runtime (nothing in memory) hears WhatsApp's receipt for that id.
    await runtime.shutdown()
    later = SessionRuntime(SESSION, engine, store, BehindReadModels(store), QUICK, lambda _r: None)
    await later.connection.start()
    client = engine.factory.last
    await client.emit(ev.Connected(status=True))
    await client.emit(
        ev.Receipt(
            MessageSource=MessageSource(Chat=ANN, Sender=ANN),
            MessageIDs=["3EB0SENT"],
            Timestamp=1_714_563_060,
            Type=ev.Receipt.READ,
        )
    )

    async def read() -> bool:
        stored = await store.get(message.id)
        return bool(stored.status == Status.READ)

    deadline = asyncio.get_running_loop().time() + 5
    while not await read():
        assert asyncio.get_running_loop().time() < deadline, "the receipt was not applied"
        await asyncio.sleep(0.01)
    await later.shutdown()


def test_neonize_cannot_send_with_a_chosen_id_yet() -> None:
    """goneonize's SendMessage passes no SendRequestExtra to whatsmeow, so the id warest
    chose (``OutboundText.wa_id``) cannot be used and whatsmeow picks one: a message sent
    again after a crash is a second message on WhatsApp (docs/neonize.md). When this fails,
    neonize can take an id: pass ``wa_id`` in ``NeonizeConnection.send_text``."""
    parameters = set(inspect.signature(NewAClient.send_message).parameters)
    assert parameters.isdisjoint({"id", "message_id", "extra", "request_extra"}), parameters
