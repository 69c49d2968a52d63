"""NeonizeConnection / NeonizeEngine driven through a recording stand-in for NewAClient.

The stand-in keeps neonize's calling conventions (``client.event(Type)(handler)``,
``client.event.qr(f)``, ``connect()`` returning the task that runs the Go client) and
answers with real neonize protobufs; nothing here loads a WhatsApp session or touches
the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, assert_never

import psycopg
import pytest
from neonize.aioze.client import ClientFactory, NewAClient
from neonize.aioze.events import set_event_loop
from neonize.events import EVENT_TO_INT
from neonize.exc import NeonizeError, PairPhoneError, SendMessageError, SendPresenceError
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ClientName, ClientType

from warest.app.engine import Device, EngineError, NotConnected, OutboundText, SendResult, SessionRef
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
from warest.infra.engines.neonize import NeonizeConnection, NeonizeEngine
from warest.infra.engines.neonize.client import new_aclient
from warest.infra.engines.neonize.store import PostgresDeviceStore, SqliteDeviceStore, device_store
from warest.infra.engines.neonize.translator import EVENT_TYPES

SESSION = SessionRef("acme", "main")
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
SENT_AT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # SendResponse.Timestamp below


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


ANN = jid("628123456789")


class StandInEvents:
    """``client.event``: records handlers the way neonize's Event does."""

    def __init__(self) -> None:
        self.handlers: dict[type[Any], Any] = {}
        self.qr_handler: Any = None

    def __call__(self, event_type: type[Any]) -> Callable[[Any], None]:
        def register(handler: Any) -> None:
            self.handlers[event_type] = handler

        return register

    def qr(self, handler: Any) -> None:
        self.qr_handler = handler


class StandInClient:
    def __init__(self, database: str, client_id: str) -> None:
        self.database = database
        self.client_id = client_id
        self.event = StandInEvents()
        self.calls: list[tuple[Any, ...]] = []
        self.stopped = asyncio.Event()
        self.crash: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.me = ev.Device(
            JID=jid("628111", device=9),
            LID=jid("4242424242", "lid", device=9),
            PushName="Warest Bot",
            Platform="android",
            BussinessName="",
        )
        self.send_error: Exception | None = None
        self.pair_error: Exception | None = None

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    # -- the NewAClient surface --
    async def connect(self, proxy_settings: Any = None) -> asyncio.Task[None]:
        self.calls.append(("connect", proxy_settings))
        return asyncio.create_task(self._run())

    async def _run(self) -> None:
        stop = asyncio.ensure_future(self.stopped.wait())
        done, _ = await asyncio.wait({stop, self.crash}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self.crash in done:
            raise NeonizeError(self.crash.result())  # what goneonize's connect task raises

    async def stop(self) -> None:
        self.calls.append(("stop",))
        self.stopped.set()

    async def logout(self) -> None:
        self.calls.append(("logout",))

    async def send_message(self, to: JID, message: e2e.Message) -> ev.SendResponse:
        self.calls.append(("send_message", to, message))
        if self.send_error is not None:
            raise self.send_error
        return ev.SendResponse(ID="3EB0SENT", Timestamp=1_700_000_000, ServerID=7)

    async def send_chat_presence(self, jid: JID, state: ChatPresence, media: ChatPresenceMedia) -> None:
        self.calls.append(("send_chat_presence", jid, state, media))
        if self.send_error is not None:
            raise self.send_error

    async def PairPhone(
        self, phone: str, show_push_notification: bool, client_name: Any = None, client_type: Any = None
    ) -> str:
        self.calls.append(("PairPhone", phone, show_push_notification, client_name, client_type))
        if self.pair_error is not None:
            raise self.pair_error
        return "ABCD-EFGH"

    async def get_me(self) -> ev.Device:
        self.calls.append(("get_me",))
        return self.me

    # -- test helpers: what goneonize would do --
    async def emit(self, event: Any) -> None:
        await self.event.handlers[type(event)](self, event)

    async def show_qr(self, code: str) -> None:
        await self.event.qr_handler(self, code.encode())


class Factory:
    def __init__(self) -> None:
        self.clients: list[StandInClient] = []

    def __call__(self, database: str, client_id: str) -> StandInClient:
        client = StandInClient(database, client_id)
        self.clients.append(client)
        return client

    @property
    def last(self) -> StandInClient:
        return self.clients[-1]


class RecordingListener:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.retries: list[float | None] = []  # reconnecting's retry_in_s, in order

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[tuple[Any, ...]]:
        await eventually(lambda: len(self.calls) >= count, timeout)
        return self.calls

    async def on(self, happening: Happening) -> None:
        """Records each happening as a tuple: its kind, then its fields."""
        if isinstance(happening, Reconnecting):
            self.retries.append(happening.retry_in_s)
        self.calls.append(as_call(happening))


def as_call(happening: Happening) -> tuple[Any, ...]:
    match happening:
        case QrShown(qr=qr, duration_s=duration_s, attempt=attempt):
            return ("qr", qr, duration_s, attempt)
        case PairingCodeShown(code=code, phone=phone):
            return ("pairing_code", code, phone)
        case Connecting():
            return ("connecting",)
        case Opened(me=me):
            return ("opened", me)
        case Reconnecting(attempt=attempt, reason=reason):
            return ("reconnecting", attempt, reason)
        case LoggedOut(reason=reason):
            return ("logged_out", reason)
        case Replaced(reason=reason):
            return ("replaced", reason)
        case Closed(reason=reason):
            return ("closed", reason)
        case Banned(reason=reason, until=until):
            return ("banned", reason, until)
        case Received():
            return ("message", happening)
        case Receipt():
            return ("receipt", happening)
        case Edited(chat=chat, target_id=target_id, by=by, text=text, at=at):
            return ("edited", chat, target_id, by, text, at)
        case Revoked(chat=chat, target_id=target_id, by=by, at=at):
            return ("revoked", chat, target_id, by, at)
        case _:
            assert_never(happening)


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def write_device(path: Path) -> None:
    """Stands in for the whatsmeow database goneonize would create."""
    path.write_bytes(b"whatsmeow")


def exists(path: Path) -> bool:
    return path.exists()


ME = Me(jid="628111@s.whatsapp.net", lid="4242424242@lid", push_name="Warest Bot")


class Rig:
    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.factory = Factory()
        self.listener = RecordingListener()
        self.store = SqliteDeviceStore(tmp_path / "neonize.db")
        self.connection = NeonizeConnection(
            SESSION,
            self.listener,
            store=self.store,
            client_factory=self.factory,
            clock=lambda: NOW,
            **options,
        )

    async def open(self) -> StandInClient:
        """Starts, and logs in as a stored device would (no QR)."""
        before = len(self.listener.calls)
        await self.connection.start()
        client = self.factory.last
        await client.emit(ev.Connected(status=True))
        await self.listener.wait_for(before + 2)
        return client


@pytest.fixture
async def rig(tmp_path: Path) -> Any:
    rig = Rig(tmp_path, reconnect_base_s=0.02, reconnect_max_s=0.05)
    yield rig
    await rig.connection.close()


def message_event(
    text: str, wa_id: str = "3EB0IN", sender: JID = ANN, body: e2e.Message | None = None
) -> ev.Message:
    return ev.Message(
        Info=MessageInfo(
            MessageSource=MessageSource(Chat=ANN, Sender=sender, IsFromMe=False),
            ID=wa_id,
            Pushname="Ann",
            Timestamp=1_714_563_000_000,
        ),
        Message=body or e2e.Message(conversation=text),
    )


# -- start: QR and pairing code ------------------------------------------------------------------


async def test_start_with_a_qr_reports_codes_then_opens(rig: Rig) -> None:
    await rig.connection.start()
    client = rig.factory.last
    assert client.database == str(rig.store.path(SESSION))
    assert client.client_id.startswith("acme/main#")
    assert client.calls == [("connect", None)]
    assert ev.Message in client.event.handlers and ev.Disconnected in client.event.handlers

    await client.show_qr("2@first")
    await client.show_qr("2@second")
    await client.emit(ev.Connected(status=True))
    calls = await rig.listener.wait_for(4)
    assert calls == [
        ("connecting",),
        ("qr", "2@first", 60, 1),
        ("qr", "2@second", 20, 2),
        ("opened", ME),
    ]
    assert rig.connection.connected


async def test_a_second_start_keeps_the_running_client(rig: Rig) -> None:
    await rig.open()
    await rig.connection.start()
    assert len(rig.factory.clients) == 1


async def test_the_session_proxy_is_applied_at_connect(tmp_path: Path) -> None:
    factory = Factory()
    proxies = {SESSION.key: "socks5://proxy.local:1080"}
    connection = NeonizeConnection(
        SESSION,
        RecordingListener(),
        store=SqliteDeviceStore(tmp_path / "n.db"),
        client_factory=factory,
        proxy_for=lambda session: proxies.get(session.key),
    )
    await connection.start()
    (name, settings), *_ = factory.last.calls
    assert name == "connect"
    assert settings.proxy_address == "socks5://proxy.local:1080"
    await connection.close()


async def test_start_with_a_phone_asks_for_a_pairing_code_after_the_first_qr(rig: Rig) -> None:
    starting = asyncio.create_task(rig.connection.start(pair_phone="+62 812-3456-789"))
    await eventually(lambda: bool(rig.factory.clients) and bool(rig.factory.last.calls))
    client = rig.factory.last
    assert not starting.done()  # waits until the client talks to WhatsApp
    await client.show_qr("2@unused")
    await starting
    assert client.calls[1] == ("PairPhone", "628123456789", True, ClientName.LINUX, ClientType.CHROME)
    await client.emit(ev.PairStatus(Status=ev.PairStatus.SUCCESS, ID=jid("628123456789")))
    await client.emit(ev.Connected(status=True))
    calls = await rig.listener.wait_for(3)
    assert calls == [("connecting",), ("pairing_code", "ABCD-EFGH", "628123456789"), ("opened", ME)]


async def test_a_refused_pairing_request_fails_the_start(rig: Rig) -> None:
    starting = asyncio.create_task(rig.connection.start(pair_phone="628123456789"))
    await eventually(lambda: bool(rig.factory.clients) and bool(rig.factory.last.calls))
    client = rig.factory.last
    client.pair_error = PairPhoneError("rate-overlimit")
    await client.show_qr("2@unused")
    with pytest.raises(EngineError) as raised:
        await starting
    assert raised.value.retryable
    assert client.names()[-1] == "stop"
    assert not rig.connection.connected
    calls = await rig.listener.wait_for(2)
    assert calls[0] == ("connecting",) and calls[1][0] == "closed"
    assert calls[1][1].startswith("pairing_failed: pair failed: rate-overlimit")


async def test_a_client_that_dies_before_pairing_fails_the_start(rig: Rig) -> None:
    starting = asyncio.create_task(rig.connection.start(pair_phone="628123456789"))
    await eventually(lambda: bool(rig.factory.clients) and bool(rig.factory.last.calls))
    rig.factory.last.crash.set_result("dial tcp: connection refused")
    with pytest.raises(EngineError, match="connection refused") as raised:
        await starting
    assert raised.value.retryable


async def test_a_store_that_cannot_be_prepared_fails_the_start(tmp_path: Path) -> None:
    class BrokenStore(SqliteDeviceStore):
        async def prepare(self, session: SessionRef, client_id: str | None = None) -> str:
            raise OSError("read-only file system")

    factory, listener = Factory(), RecordingListener()
    connection = NeonizeConnection(
        SESSION, listener, store=BrokenStore(tmp_path / "n.db"), client_factory=factory
    )
    with pytest.raises(EngineError, match="read-only file system") as raised:
        await connection.start()
    assert raised.value.code == "connect_failed" and not raised.value.retryable
    assert factory.clients == []
    assert await listener.wait_for(2) == [
        ("connecting",),
        ("closed", "start_failed: connect failed: read-only file system"),
    ]
    await connection.close()


async def test_an_unscanned_qr_closes_the_session(tmp_path: Path) -> None:
    rig = Rig(tmp_path, qr_durations_s=(0.02, 0.02), qr_grace_s=0.01)
    await rig.connection.start()
    client = rig.factory.last
    await client.show_qr("2@only")
    calls = await rig.listener.wait_for(3)
    assert calls == [("connecting",), ("qr", "2@only", 0, 1), ("closed", "qr_timeout")]
    assert client.names() == ["connect", "stop"]
    await rig.connection.close()


# -- stop, logout, device -------------------------------------------------------------------------


async def test_stop_disconnects_and_keeps_the_device(rig: Rig) -> None:
    client = await rig.open()
    device_file = rig.store.path(SESSION)
    device_file.write_bytes(b"whatsmeow")
    await rig.connection.stop()
    assert client.names() == ["connect", "get_me", "stop"]
    assert client.stopped.is_set()
    assert not rig.connection.connected
    assert device_file.exists()
    assert rig.listener.calls == [("connecting",), ("opened", ME)]  # the runtime records stops
    await rig.connection.start()
    assert len(rig.factory.clients) == 2  # a fresh client on the same device store


async def test_logout_unlinks_and_forgets_the_credentials(rig: Rig) -> None:
    client = await rig.open()
    device_file = rig.store.path(SESSION)
    device_file.write_bytes(b"whatsmeow")
    await rig.connection.logout()
    assert client.names() == ["connect", "get_me", "logout", "stop"]
    assert not device_file.exists()
    assert not rig.connection.connected
    assert await rig.connection.device() is None


async def test_device_describes_the_linked_account(rig: Rig) -> None:
    assert await rig.connection.device() is None  # nothing started: Go knows no client
    await rig.open()
    assert await rig.connection.device() == Device(
        name="Warest Bot",
        phone="628111",
        platform="android",
        extra={"jid": "628111@s.whatsapp.net", "engine": "neonize", "lid": "4242424242@lid"},
    )


# -- sending ------------------------------------------------------------------------------------------


async def test_send_text_sends_a_plain_conversation(rig: Rig) -> None:
    client = await rig.open()
    result = await rig.connection.send_text(
        OutboundText(to="628999@s.whatsapp.net", wa_id="l1", text="hello")
    )
    assert result == SendResult(wa_id="3EB0SENT", sent_at=SENT_AT)
    name, to, message = client.calls[-1]
    assert name == "send_message"
    assert to == jid("628999")
    assert message == e2e.Message(conversation="hello")


async def test_send_text_with_mentions_to_a_group(rig: Rig) -> None:
    client = await rig.open()
    text = OutboundText(
        to="120363025246125888@g.us",
        wa_id="l2",
        text="hi @628111 and @4242",
        mentions=("628111@s.whatsapp.net", "4242@lid"),
    )
    await rig.connection.send_text(text)
    _, to, message = client.calls[-1]
    assert to == jid("120363025246125888", "g.us")
    assert message.extendedTextMessage.text == "hi @628111 and @4242"
    assert list(message.extendedTextMessage.contextInfo.mentionedJID) == ["628111@s.whatsapp.net", "4242@lid"]
    assert not message.extendedTextMessage.contextInfo.stanzaID


async def test_a_reply_quotes_a_remembered_message(rig: Rig) -> None:
    client = await rig.open()
    await client.emit(message_event("the question", wa_id="3EB0Q"))
    await rig.listener.wait_for(3)
    await rig.connection.send_text(
        OutboundText(to="628123456789@s.whatsapp.net", wa_id="l3", text="the answer", reply_to="3EB0Q")
    )
    context = client.calls[-1][2].extendedTextMessage.contextInfo
    assert context.stanzaID == "3EB0Q"
    assert context.participant == "628123456789@s.whatsapp.net"
    assert context.quotedMessage == e2e.Message(conversation="the question")

    await rig.connection.send_text(
        OutboundText(to="628123456789@s.whatsapp.net", wa_id="l4", text="and again", reply_to="3EB0UNKNOWN")
    )
    context = client.calls[-1][2].extendedTextMessage.contextInfo
    assert context.stanzaID == "3EB0UNKNOWN"
    assert not context.participant and not context.HasField("quotedMessage")


async def test_sending_needs_a_connection(rig: Rig) -> None:
    with pytest.raises(NotConnected):
        await rig.connection.send_text(OutboundText(to="628999", wa_id="l", text="x"))
    await rig.connection.start()  # started but not logged in yet
    with pytest.raises(NotConnected):
        await rig.connection.send_text(OutboundText(to="628999", wa_id="l", text="x"))


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (SendMessageError("failed to send: websocket not connected"), "not_connected", True),
        (SendMessageError("failed to get device list: info query timed out"), "timeout", True),
        (SendMessageError("can't send message to unknown server lol"), "invalid_recipient", False),
        (SendMessageError("server returned error 406"), "send_failed", False),
    ],
)
async def test_send_failures_become_engine_errors(
    rig: Rig, error: Exception, code: str, retryable: bool
) -> None:
    client = await rig.open()
    client.send_error = error
    with pytest.raises(EngineError) as raised:
        await rig.connection.send_text(OutboundText(to="628999", wa_id="l", text="x"))
    assert (raised.value.code, raised.value.retryable) == (code, retryable)


async def test_chat_presence(rig: Rig) -> None:
    client = await rig.open()
    for state in ("composing", "recording", "paused"):
        await rig.connection.send_presence("628999@s.whatsapp.net", state)
    assert client.calls[-3:] == [
        (
            "send_chat_presence",
            jid("628999"),
            ChatPresence.CHAT_PRESENCE_COMPOSING,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
        ),
        (
            "send_chat_presence",
            jid("628999"),
            ChatPresence.CHAT_PRESENCE_COMPOSING,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO,
        ),
        (
            "send_chat_presence",
            jid("628999"),
            ChatPresence.CHAT_PRESENCE_PAUSED,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
        ),
    ]
    with pytest.raises(EngineError, match="unknown chat presence"):
        await rig.connection.send_presence("628999@s.whatsapp.net", "dancing")
    client.send_error = SendPresenceError("websocket not connected")
    with pytest.raises(NotConnected):
        await rig.connection.send_presence("628999@s.whatsapp.net", "composing")


# -- events reach the listener in order ---------------------------------------------------------------


async def test_events_reach_the_listener_in_order(rig: Rig) -> None:
    client = await rig.open()
    read = ev.Receipt(
        MessageSource=MessageSource(Chat=ANN, Sender=ANN),
        MessageIDs=["3EB0SENT"],
        Timestamp=1_714_563_060,
        Type=ev.Receipt.READ,
    )
    own_device = ev.Receipt(
        MessageSource=MessageSource(Chat=ANN, Sender=ANN), MessageIDs=["x"], Type=ev.Receipt.SENDER
    )
    # goneonize schedules each handler as its own task, all at once
    await asyncio.gather(
        client.emit(message_event("one", wa_id="3EB01")),
        client.emit(read),
        client.emit(own_device),  # not a status move: dropped
        client.emit(ev.Presence(From=ANN, Unavailable=False)),  # no port callback: dropped
        client.emit(message_event("two", wa_id="3EB02")),
    )
    calls = (await rig.listener.wait_for(5))[2:]
    assert [call[0] for call in calls] == ["message", "receipt", "message"]
    assert calls[0][1].text == "one" and calls[2][1].text == "two"
    assert calls[1][1] == Receipt(
        chat="628123456789@s.whatsapp.net",
        wa_ids=("3EB0SENT",),
        status="read",
        at=datetime(2024, 5, 1, 11, 31, tzinfo=UTC),
        by="628123456789@s.whatsapp.net",
    )


async def test_edits_and_revokes_reach_the_listener_for_the_message_they_change(rig: Rig) -> None:
    client = await rig.open()
    edit = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(
            type=e2e.ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(ID="3EB0ORIG", remoteJID="628123456789@s.whatsapp.net"),
            editedMessage=e2e.Message(conversation="fixed typo"),
        )
    )
    revoke = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE, key=MessageKey(ID="3EB0ORIG"))
    )
    await client.emit(message_event("", wa_id="3EB0EDIT", body=edit))
    await client.emit(message_event("", wa_id="3EB0REVOKE", body=revoke))
    calls = (await rig.listener.wait_for(4))[2:]
    ann, sent = "628123456789@s.whatsapp.net", datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert calls == [
        ("edited", ann, "3EB0ORIG", ann, "fixed typo", sent),
        ("revoked", ann, "3EB0ORIG", ann, sent),
    ]


async def test_a_drop_recovered_by_whatsmeow_needs_no_new_client(tmp_path: Path) -> None:
    rig = Rig(tmp_path, reconnect_base_s=5.0, reconnect_max_s=5.0)
    client = await rig.open()
    await client.emit(ev.Disconnected(status=True))
    await rig.listener.wait_for(3)
    assert not rig.connection.connected
    await client.emit(ev.Connected(status=True))  # whatsmeow's own auto-reconnect
    calls = await rig.listener.wait_for(4)
    assert calls[2:] == [("reconnecting", 1, "connection_lost"), ("opened", ME)]
    assert len(rig.factory.clients) == 1 and "stop" not in client.names()
    await rig.connection.close()


async def test_a_lasting_drop_is_reported_with_back_off_while_whatsmeow_retries(tmp_path: Path) -> None:
    rig = Rig(tmp_path, reconnect_base_s=0.02, reconnect_max_s=1.0)
    client = await rig.open()
    await client.emit(ev.Disconnected(status=True))
    calls = await rig.listener.wait_for(5)
    assert calls[2:5] == [
        ("reconnecting", 1, "connection_lost"),
        ("reconnecting", 2, "connection_lost"),
        ("reconnecting", 3, "connection_lost"),
    ]
    # a logged-in client is whatsmeow's to reconnect: replacing it would leak its database pool
    assert len(rig.factory.clients) == 1 and "stop" not in client.names()
    await client.emit(ev.Connected(status=True))
    await eventually(lambda: rig.listener.calls[-1] == ("opened", ME))
    settled = len(rig.listener.calls)
    await asyncio.sleep(0.2)
    assert len(rig.listener.calls) == settled  # back online: no more reports
    await rig.connection.close()


async def test_back_off_doubles_up_to_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, reconnect_base_s=1.0, reconnect_max_s=5.0)
    client = await rig.open()
    waits: list[float] = []

    async def wait_online(timeout: float) -> bool:
        waits.append(timeout)
        if len(waits) == 5:
            await client.emit(ev.Connected(status=True))
            await eventually(lambda: rig.connection.connected)
        return rig.connection.connected

    monkeypatch.setattr(rig.connection, "_wait_online", wait_online)
    await client.emit(ev.Disconnected(status=True))
    await eventually(lambda: len(waits) == 5)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    calls = await rig.listener.wait_for(8)
    assert [c[1] for c in calls if c[0] == "reconnecting"] == [1, 2, 3, 4, 5]
    await rig.connection.close()


async def test_a_drop_before_login_restarts_the_client(rig: Rig) -> None:
    await rig.connection.start()
    first = rig.factory.last
    await first.show_qr("2@old")
    await first.emit(ev.Disconnected(status=True))
    await eventually(lambda: len(rig.factory.clients) == 2)
    assert first.names() == ["connect", "stop"]
    second = rig.factory.last
    # the restarted client is the next attempt
    await eventually(lambda: ("reconnecting", 2, "connection_lost") in rig.listener.calls)
    await first.emit(message_event("late, from the stopped client"))  # ignored
    await first.show_qr("2@stale")  # ignored
    await second.show_qr("2@new")
    await second.emit(ev.Connected(status=True))
    calls = await rig.listener.wait_for(6)
    assert calls == [
        ("connecting",),
        ("qr", "2@old", 60, 1),
        ("reconnecting", 1, "connection_lost"),
        ("reconnecting", 2, "connection_lost"),
        ("qr", "2@new", 60, 1),
        ("opened", ME),
    ]


async def test_a_failing_client_thread_is_restarted(rig: Rig) -> None:
    first = await rig.open()
    first.crash.set_result("goneonize: database is locked")
    calls = await rig.listener.wait_for(3)
    assert calls[2] == ("reconnecting", 1, "goneonize: database is locked")
    await eventually(lambda: len(rig.factory.clients) == 2)
    await rig.factory.last.emit(ev.Connected(status=True))
    await eventually(lambda: rig.connection.connected)


async def test_logged_out_from_the_phone_removes_the_device(rig: Rig) -> None:
    client = await rig.open()
    device_file = rig.store.path(SESSION)
    device_file.write_bytes(b"whatsmeow")
    await client.emit(ev.LoggedOut(OnConnect=False, Reason=ev.LOGGED_OUT))
    calls = await rig.listener.wait_for(3)
    assert calls[2] == ("logged_out", "logged_out")
    assert client.names()[-1] == "stop"
    assert not device_file.exists()
    assert not rig.connection.connected
    await asyncio.sleep(0.06)
    assert len(rig.factory.clients) == 1  # no reconnect after a logout


async def test_replaced_and_banned_end_the_link_without_reconnecting(rig: Rig) -> None:
    client = await rig.open()
    device_file = rig.store.path(SESSION)
    device_file.write_bytes(b"whatsmeow")
    await client.emit(ev.StreamReplaced())
    assert (await rig.listener.wait_for(3))[2] == ("replaced", "stream_replaced")
    assert client.names()[-1] == "stop" and device_file.exists()

    client = await rig.open()
    await client.emit(ev.TemporaryBan(Code=ev.TemporaryBan.BLOCKED_BY_USERS, Expire=7200))
    calls = await rig.listener.wait_for(6)
    assert calls[5] == ("banned", "blocked_by_users", NOW + timedelta(hours=2))
    await asyncio.sleep(0.06)
    assert len(rig.factory.clients) == 2


async def test_a_connect_failure_closes_the_session(rig: Rig) -> None:
    client = await rig.open()
    await client.emit(ev.ClientOutdated())
    assert (await rig.listener.wait_for(3))[2] == ("closed", "client_outdated")
    assert client.names()[-1] == "stop"


# -- the engine ------------------------------------------------------------------------------------------


async def test_engine_keeps_one_connection_per_session_and_forgets_devices(tmp_path: Path) -> None:
    factory = Factory()
    engine = NeonizeEngine(str(tmp_path / "devices.db"), client_factory=factory, reconnect_base_s=0.01)
    assert engine.name == "neonize"
    first, second = RecordingListener(), RecordingListener()
    connection = engine.connection(SESSION, first)
    assert engine.connection(SESSION, second) is connection and connection.listener is second
    other = engine.connection(SessionRef("acme", "other"), first)
    assert other is not connection

    await connection.start()
    client = factory.last
    assert client.database == str(tmp_path / "devices" / Path(client.database).name)
    write_device(Path(client.database))
    await engine.forget(SESSION)
    assert client.names() == ["connect", "stop"]
    assert not exists(Path(client.database))
    assert engine.connection(SESSION, first) is not connection  # forgotten: a new one

    await other.start()
    await engine.close()
    assert factory.last.names() == ["connect", "stop"]


async def test_forget_without_a_connection_still_wipes_the_store(tmp_path: Path) -> None:
    engine = NeonizeEngine(str(tmp_path / "devices.db"), client_factory=Factory())
    store = engine.store
    assert isinstance(store, SqliteDeviceStore)
    path = Path(await store.prepare(SESSION))
    write_device(path)
    await engine.forget(SESSION)
    assert not exists(path)


async def test_the_postgres_store_gives_each_session_a_schema(database_url: str) -> None:
    store = device_store(database_url + "?connect_timeout=5")
    assert isinstance(store, PostgresDeviceStore)
    schema = store.schema(SESSION)
    assert schema.startswith("wa_acme_main_") and len(schema) < 63
    assert store.schema(SessionRef("acme", "other")) != schema
    location = await store.prepare(SESSION)
    assert location.startswith(database_url)
    assert f"search_path={schema}" in location and "connect_timeout=5" in location
    assert "sslmode=prefer" in location  # lib/pq would otherwise insist on TLS

    def exists() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            return bool(row and row[0])

    try:
        assert exists()
        await store.prepare(SESSION)  # idempotent
        await store.wipe(SESSION)
        assert not exists()
        await store.wipe(SESSION)  # idempotent
    finally:
        await store.wipe(SESSION)


# -- the real NewAClient, without connecting ---------------------------------------------------------


async def test_a_real_newaclient_is_wired_through_neonizes_own_dispatch(tmp_path: Path) -> None:
    """Events and QR codes enter the way goneonize delivers them (a Go thread calling
    ``Event.execute`` / the QR callback with raw bytes); only ``connect`` is replaced,
    because the real one would dial WhatsApp."""
    clients: list[Any] = []

    def factory(database: str, client_id: str) -> Any:
        client = new_aclient(database, client_id)

        async def connect(proxy_settings: Any = None) -> asyncio.Task[None]:
            return asyncio.create_task(asyncio.sleep(0))

        client.connect = connect
        clients.append(client)
        return client

    set_event_loop(asyncio.get_running_loop())  # what NewAClient.connect() would do
    listener = RecordingListener()
    connection = NeonizeConnection(
        SESSION, listener, store=SqliteDeviceStore(tmp_path / "n.db"), client_factory=factory
    )
    await connection.start()
    client = clients[0]
    assert isinstance(client, NewAClient)
    assert client.name == str(tmp_path / "n" / Path(client.name).name)
    assert client.uuid.decode().startswith("acme/main#")
    assert (client.device_props.os, client.device_props.platformType) == ("warest", DeviceProps.CHROME)
    assert set(client.event.list_func) == {EVENT_TO_INT[t] for t in EVENT_TYPES}

    def go_thread_delivers(event: Any) -> None:
        data = event.SerializePartialToString()  # goneonize fills every field; tests need not
        buffer = ctypes.create_string_buffer(data, len(data))
        client.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])

    qr = ctypes.create_string_buffer(b"2@real-qr,abc")
    await asyncio.to_thread(client._NewAClient__onQr, 0, ctypes.addressof(qr))
    await listener.wait_for(2)
    await asyncio.to_thread(go_thread_delivers, message_event("through neonize", wa_id="3EB0REAL"))
    await asyncio.to_thread(go_thread_delivers, ev.StreamReplaced())
    calls = await listener.wait_for(4)
    assert calls[:2] == [("connecting",), ("qr", "2@real-qr,abc", 60, 1)]
    assert (
        calls[2][0] == "message" and calls[2][1].wa_id == "3EB0REAL" and calls[2][1].text == "through neonize"
    )
    assert calls[3] == ("replaced", "stream_replaced")  # and the real stop() ran against Go
    await connection.close()


# -- the device stores, opened by goneonize itself (whatsmeow creates its tables; no network) ---------


def whatsmeow_tables(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


async def test_goneonize_keeps_each_postgres_session_in_its_schema(database_url: str) -> None:
    store = PostgresDeviceStore(database_url)
    session, other = SessionRef("acme", "go-pg"), SessionRef("acme", "go-pg-2")
    try:
        location = await store.prepare(session)
        assert await asyncio.to_thread(ClientFactory.get_all_devices_from_db, location) == []
        tables = whatsmeow_tables(database_url, store.schema(session))
        assert {"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_version"} <= tables
        assert whatsmeow_tables(database_url, store.schema(other)) == set()
        assert whatsmeow_tables(database_url, "public") & {"whatsmeow_device"} == set()
        await store.wipe(session)
        assert whatsmeow_tables(database_url, store.schema(session)) == set()
    finally:
        await store.wipe(session)


async def test_goneonize_keeps_each_sqlite_session_in_its_file(tmp_path: Path) -> None:
    store = SqliteDeviceStore(tmp_path / "neonize.db")
    location = await store.prepare(SESSION)
    assert await asyncio.to_thread(ClientFactory.get_all_devices_from_db, location) == []
    assert "whatsmeow_device" in sqlite_tables(Path(location))
    await store.wipe(SESSION)
    assert not exists(Path(location))


def sqlite_tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
