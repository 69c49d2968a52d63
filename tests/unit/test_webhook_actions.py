"""Actions-in-response: parsing and limits, templates, dispatch and every primitive, with a
recording fake port and a fake sleep (no real waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from warest.app.webhook_actions import (
    MAX_ACTIONS,
    MAX_ATTEMPTS,
    MAX_DELAY_MS,
    ActionResult,
    ActionRunner,
    ActionsInvalid,
    Reply,
    parse_reply,
    render,
    template_context,
)
from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid

CHAT = "6281234567890@s.whatsapp.net"
GROUP = "120363025246125888@g.us"
LID = "123456789012345@lid"

BODY: dict[str, Any] = {
    "event": "message_received",
    "data": {
        "id": "main",
        "sessionId": "main",
        "tags": "text",
        "text": "ping",
        "type": "notify",
        "sender": {"chatId": CHAT, "fromMe": False},
        "message": {"key": {"id": "ABC123", "remoteJid": CHAT}},
        "mentions": ["628111111111@s.whatsapp.net", "628222222222@s.whatsapp.net"],
        "count": 3,
        "ratio": 1.5,
        "whole": 2.0,
        "flag": True,
        "nothing": None,
    },
    "ts": 1733000000000,
    "type": "outer",
    "session": {"id": "main", "label": "Main", "registry": "admin", "username": "admin"},
}
CTX = template_context(BODY)


class Boom(Exception):
    pass


class FakePort:
    """Records every call; ``errors[method]`` is a list of exceptions raised by the next calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.errors: dict[str, list[BaseException]] = {}
        self._sent = 0

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        pending = self.errors.get(call[0])
        if pending:
            raise pending.pop(0)

    async def send_text(self, to: Jid, text: str, mentions: list[str], reply_to: str | None) -> str:
        self._record("send_text", str(to), text, mentions, reply_to)
        self._sent += 1
        return f"MSG{self._sent}"

    async def react(self, chat: Jid, message_id: str, emoji: str) -> None:
        self._record("react", str(chat), message_id, emoji)

    async def star(self, chat: Jid, message_id: str, starred: bool) -> None:
        self._record("star", str(chat), message_id, starred)

    async def delete_for_me(self, chat: Jid, message_id: str) -> None:
        self._record("delete_for_me", str(chat), message_id)

    async def revoke(self, chat: Jid, message_id: str) -> None:
        self._record("revoke", str(chat), message_id)

    async def edit(self, chat: Jid, message_id: str, text: str) -> None:
        self._record("edit", str(chat), message_id, text)

    async def read(self, chat: Jid, message_ids: list[str]) -> None:
        self._record("read", str(chat), message_ids)

    async def presence(self, state: str, to: Jid | None) -> None:
        self._record("presence", state, None if to is None else str(to))


class Sleeps:
    def __init__(self) -> None:
        self.durations: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)


class Harness:
    def __init__(self, **options: Any) -> None:
        self.port = FakePort()
        self.sleeps = Sleeps()
        self.runner = ActionRunner(self.port, sleep=self.sleeps, **options)

    async def run(
        self,
        actions: list[dict[str, Any]],
        delay_ms: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[ActionResult]:
        return await self.runner.run(Reply(actions, delay_ms), CTX if context is None else context)


def only(results: list[ActionResult]) -> ActionResult:
    assert len(results) == 1, results
    return results[0]


def text(to: str = CHAT, body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "text", "to": to, "text": body, **extra}


# -- parse_reply and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b"", None),
        (b"\xff\xfe", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"actions"', "application/json"),
        (b'{"ok": true}', "application/json"),
        (b'{"ok": true, "actions": null}', "application/json"),
        (b'{"actions": []}', "image/png"),
        (b'{"actions": []}', "application/octet-stream"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
    ],
)
def test_parse_reply_without_actions_is_none(body: bytes, content_type: str | None) -> None:
    assert parse_reply(body, content_type) is None


def test_parse_reply_reads_actions_and_delay() -> None:
    body = (
        b'{"ok":true,"actions":[{"type":"text","to":"<chatId>","text":"pong"},'
        b'{"act":"delay","ms":1000}],"delayMs":600}'
    )
    reply = parse_reply(body, "application/json; charset=utf-8")
    assert reply == Reply(
        [{"type": "text", "to": "<chatId>", "text": "pong"}, {"act": "delay", "ms": 1000}], 600
    )
    # receivers that label JSON as text (res.send(JSON.stringify(...))) or send no type still count
    assert parse_reply(b'{"actions": []}', "text/html") == Reply([], None)
    assert parse_reply(b'{"actions": [], "delayMs": null}', None) == Reply([], None)


@pytest.mark.parametrize("actions", [b'"text"', b"{}", b"3", b"true"])
def test_actions_that_are_not_a_list_are_refused(actions: bytes) -> None:
    with pytest.raises(ActionsInvalid) as error:
        parse_reply(b'{"actions": ' + actions + b"}", "application/json")
    assert error.value.field == "actions"
    assert str(error.value) == "actions: must be a list"
    assert isinstance(error.value, InvalidValue)


@pytest.mark.parametrize("delay", ["-1", str(MAX_DELAY_MS + 1), '"600"', "true", "1.5"])
def test_bad_delay_ms_is_refused(delay: str) -> None:
    with pytest.raises(ActionsInvalid) as error:
        parse_reply(f'{{"actions": [], "delayMs": {delay}}}'.encode(), "application/json")
    assert error.value.field == "delayMs"


def test_delay_ms_bounds_are_accepted() -> None:
    for delay in (0, MAX_DELAY_MS):
        reply = parse_reply(f'{{"actions": [], "delayMs": {delay}}}'.encode(), None)
        assert reply is not None and reply.delay_ms == delay


def test_at_most_max_actions_in_total_nested_included() -> None:
    Reply([{"type": "noop"}] * MAX_ACTIONS, None)
    with pytest.raises(ActionsInvalid, match="at most 50 entries"):
        Reply([{"type": "noop"}] * (MAX_ACTIONS + 1), None)
    queue = {"act": "queue", "items": [{"type": "noop"}] * 24}  # 25 entries each
    Reply([queue, queue], None)
    with pytest.raises(ActionsInvalid, match="not 51"):
        Reply([queue, queue, {"type": "noop"}], None)
    with pytest.raises(ActionsInvalid, match="not 51"):  # retry + the queue in its item
        Reply([queue, {"act": "retry", "item": queue}], None)


def nested(levels: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "noop"}
    for _ in range(levels - 1):
        entry = {"act": "queue", "items": [entry]}
    return entry


def test_nesting_deeper_than_max_depth_is_refused() -> None:
    Reply([nested(4)], None)
    with pytest.raises(ActionsInvalid) as error:
        Reply([nested(5)], None)
    assert error.value.field == "actions.0.items.0.items.0.items.0.items.0"
    assert "nested at most 4 levels" in error.value.reason
    with pytest.raises(ActionsInvalid):  # every child key counts: then / else / item / onFail
        Reply(
            [{"act": "when", "else": [{"act": "retry", "item": {"act": "queue", "onFail": [nested(2)]}}]}],
            None,
        )


def test_entries_must_be_objects_and_values_not_absurdly_deep() -> None:
    with pytest.raises(ActionsInvalid) as error:
        Reply([{"act": "queue", "items": [{"type": "noop"}, "text"]}], None)
    assert (error.value.field, error.value.reason) == ("actions.0.items.1", "must be an object")
    with pytest.raises(ActionsInvalid) as error:
        Reply([{"type": "noop"}, "text"], None)  # type: ignore[list-item]
    assert error.value.field == "actions.1"
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(ActionsInvalid, match="values may be nested"):
        Reply([{"type": "raw", "message": deep}], None)


# -- templates ------------------------------------------------------------------------------------


def test_template_context_merges_data_over_the_body() -> None:
    assert CTX["event"] == "message_received"
    assert CTX["session"]["label"] == "Main"
    assert CTX["text"] == "ping"
    assert CTX["type"] == "notify"  # payload keys win clashes
    assert CTX["data"]["sessionId"] == "main"
    assert template_context({"event": "x", "data": "not an object"})["event"] == "x"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{text}}", "ping"),
        ("{{ sender.chatId }}", CHAT),
        ("{{message.key.id}}/{{data.message.key.remoteJid}}", f"ABC123/{CHAT}"),
        (
            "{{mentions.0}}|{{mentions.1}}|{{mentions.2}}",
            "628111111111@s.whatsapp.net|628222222222@s.whatsapp.net|",
        ),
        ("{{mentions.01}}{{mentions.-1}}", ""),
        ("[{{missing}}][{{sender.missing.deeper}}][{{nothing}}][{{text.0}}]", "[][][][]"),
        ("{{message}}|{{mentions}}|{{session}}", "||"),  # no [object Object], no JSON
        ("{{count}} {{ratio}} {{whole}} {{ts}} {{flag}}", "3 1.5 2 1733000000000 true"),
        ("{{session.username}} said {{event}}", "admin said message_received"),
        ("no templates {here}", "no templates {here}"),
    ],
)
def test_render_strings(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_render_walks_values_but_never_keys_or_non_strings() -> None:
    value = {"{{text}}": "{{text}}", "n": 5, "b": False, "z": None, "list": ["{{tags}}", {"x": "{{count}}"}]}
    assert render(value, CTX) == {
        "{{text}}": "ping",
        "n": 5,
        "b": False,
        "z": None,
        "list": ["text", {"x": "3"}],
    }


def test_render_is_a_single_pass() -> None:
    context = template_context(
        {"data": {"text": "{{session.id}} {{secret}}", "secret": "s"}, "session": {"id": "x"}}
    )
    assert render("echo: {{text}}", context) == "echo: {{session.id}} {{secret}}"


async def test_templates_are_rendered_in_nested_entries_before_running() -> None:
    h = Harness()
    results = await h.run(
        [
            {
                "act": "when",
                "cond": "{{text}}",
                "then": [{"act": "queue", "items": [text("{{sender.chatId}}", "pong to {{sender.chatId}}")]}],
            }
        ]
    )
    assert all(r.ok for r in results)
    assert h.port.calls == [("send_text", CHAT, f"pong to {CHAT}", [], None)]
    assert [r.path for r in results] == ["0", "0.then.0", "0.then.0.items.0"]


# -- dispatch -------------------------------------------------------------------------------------


async def test_dispatch_rule() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "DELAY", "ms": 10},  # act wins, lower-cased
            {"action": "Presence", "state": "unavailable"},
            {"type": "Delay", "ms": 20},  # a control type
            {"act": "nope", "type": "text", "to": CHAT, "text": "fell through"},  # unknown act -> type
            {"act": "nope"},
            {"type": "carousel", "to": CHAT},
            {"to": CHAT, "text": "no type"},
            {"type": "noop"},
        ]
    )
    assert [(r.kind, r.ok, r.error) for r in results] == [
        ("delay", True, None),
        ("presence", True, None),
        ("delay", True, None),
        ("text", True, None),
        ("nope", False, "unknown action type 'nope'"),
        ("carousel", False, "unknown action type 'carousel'"),
        ("", False, "type: is required"),
        ("noop", True, None),
    ]
    assert h.port.calls == [
        ("presence", "unavailable", None),
        ("send_text", CHAT, "fell through", [], None),
    ]
    assert h.sleeps.durations == [0.01, 0.02, 1.2]  # the pause after the one successful send


# -- sends ----------------------------------------------------------------------------------------


async def test_text_sends_with_mentions_and_quote() -> None:
    h = Harness()
    results = await h.run(
        [
            text(body="hello", mentions=["0811111111", 628222222222, LID], quoted="{{message.key.id}}"),
            text(GROUP, "to the group", replyTo={"key": {"id": "Q1"}}),
            text(LID, "to a lid", quoted={"id": "Q2"}),
        ]
    )
    assert results == [
        ActionResult("0", "text", True, message_id="MSG1"),
        ActionResult("1", "text", True, message_id="MSG2"),
        ActionResult("2", "text", True, message_id="MSG3"),
    ]
    assert h.port.calls == [
        (
            "send_text",
            CHAT,
            "hello",
            ["62811111111@s.whatsapp.net", "628222222222@s.whatsapp.net", LID],
            "ABC123",
        ),
        ("send_text", GROUP, "to the group", [], "Q1"),
        ("send_text", LID, "to a lid", [], "Q2"),
    ]


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (LID, LID),
        (GROUP, GROUP),
        ("6281234567890@c.us", CHAT),
        ("081234567890", CHAT),
        ("+62 812-3456-7890", CHAT),
        ("006281234567890", CHAT),
        (6281234567890, CHAT),
    ],
)
async def test_recipients_are_normalised_and_lid_and_groups_kept(to: Any, expected: str) -> None:
    h = Harness()
    assert only(await h.run([text(to)])).ok
    assert h.port.calls == [("send_text", expected, "hi", [], None)]


async def test_country_code_is_configurable() -> None:
    h = Harness(default_country_code="44")
    await h.run([text("07700900123")])
    assert h.port.calls[0][1] == "447700900123@s.whatsapp.net"


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"type": "text", "text": "hi"}, "to: is required"),
        (text("{{missing}}"), "to: is required"),
        (text("abc"), "to: 'abc' is not a phone number"),
        (text("1@lid.example"), "to: '1@lid.example' has an unknown server '@lid.example'"),
        (text(body=""), "text: must be a non-empty string"),
        ({"type": "text", "to": CHAT}, "text: is required (text)"),
        (text(mentions=["bogus"]), "mentions: 'bogus' is not a phone number"),
        (text(mentions={"a": 1}), "mentions: must be a string or a list"),
        (text(body="poison\x00byte"), "text: must not contain NUL characters or unpaired surrogates"),
        (text(body="x" * 65_537), "text: must be at most 65536 characters"),
        (text("62812\x00345678"), "to: must not contain NUL characters or unpaired surrogates"),
    ],
)
async def test_text_validation(entry: dict[str, Any], error: str) -> None:
    h = Harness()
    assert only(await h.run([entry])) == ActionResult("0", "text", False, error)
    assert h.port.calls == []


UNAVAILABLE: list[dict[str, Any]] = [
    {"type": "media", "mediaType": "image", "url": "https://x/y.png"},
    {"type": "document", "url": "https://x/y.pdf"},
    {"type": "location", "lat": 0, "lng": 106.8},
    {"type": "sticker", "imageUrl": "https://x/y.png"},
    {"type": "vcard", "contact": {"fullName": "A"}},
    {"type": "button", "buttons": [{"id": "1"}]},
    {"type": "list", "sections": []},
    {"type": "poll", "message": {"poll": {"name": "?"}}},
    {"type": "forward", "message": {"text": "x"}},
    {"type": "raw", "message": {"text": "x"}},
]


@pytest.mark.parametrize("entry", UNAVAILABLE, ids=[e["type"] for e in UNAVAILABLE])
async def test_unavailable_send_kinds_fail_with_a_clear_reason(entry: dict[str, Any]) -> None:
    h = Harness()
    kind = entry["type"]
    assert only(await h.run([{**entry, "to": CHAT}])) == ActionResult(
        "0", kind, False, f"send kind '{kind}' is not available yet"
    )
    assert only(await h.run([entry])) == ActionResult("0", kind, False, "to: is required")
    assert h.port.calls == [] and h.sleeps.durations == []


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"type": "media", "to": CHAT, "url": "u"}, "mediaType: is required"),
        (
            {"type": "media", "to": CHAT, "mediaType": "pdf", "url": "u"},
            "mediaType: must be one of image, video, gif, audio",
        ),
        ({"type": "sticker", "to": CHAT}, "webpUrl: one of webpUrl, imageUrl is required"),
        ({"type": "location", "to": CHAT, "lat": 1}, "lng: is required"),
        ({"type": "raw", "to": "x@nowhere"}, "to: 'x@nowhere' has an unknown server '@nowhere'"),
    ],
)
async def test_unavailable_send_kinds_are_validated_first(entry: dict[str, Any], error: str) -> None:
    assert only(await Harness().run([entry])).error == error


# -- pauses between top-level sends ---------------------------------------------------------------


async def test_default_pause_between_sends_but_not_after_the_last() -> None:
    h = Harness()
    await h.run([text(), text(), text()])
    assert h.sleeps.durations == [1.2, 1.2]
    assert len(h.port.calls) == 3


async def test_delay_ms_overrides_the_pause() -> None:
    h = Harness(default_delay_ms=5000)
    await h.run([text(), {"type": "noop"}, text()], delay_ms=600)
    assert h.sleeps.durations == [0.6, 0.6]
    h = Harness()
    await h.run([text(), text()], delay_ms=0)
    assert h.sleeps.durations == []


async def test_no_automatic_pause_after_control_entries_or_failed_sends() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("down")]
    await h.run([text(), {"act": "presence"}, {"type": "media", "to": CHAT}, text(), {"act": "presence"}])
    assert h.sleeps.durations == [1.2]  # only after the successful send at index 3


async def test_sleeps_are_capped_by_max_delay() -> None:
    h = Harness(max_delay_ms=1000, default_delay_ms=3000)
    await h.run([text(), {"act": "delay", "ms": 50_000}, {"act": "delay", "seconds": 2}, {"act": "delay"}])
    assert h.sleeps.durations == [1.0, 1.0, 1.0, 1.0]


# -- failures -------------------------------------------------------------------------------------


async def test_a_port_exception_does_not_stop_later_actions() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("engine refused")]
    h.port.errors["react"] = [RuntimeError()]
    results = await h.run(
        [
            text(body="one"),
            {"act": "react", "key": {"id": "K", "remoteJid": CHAT}, "emoji": "👍"},
            text(body="two"),
        ]
    )
    assert [(r.ok, r.error, r.message_id) for r in results] == [
        (False, "engine refused", None),
        (False, "RuntimeError", None),
        (True, None, "MSG1"),
    ]
    assert [c[0] for c in h.port.calls] == ["send_text", "react", "send_text"]


async def test_cancellation_propagates() -> None:
    h = Harness()
    h.port.errors["send_text"] = [asyncio.CancelledError()]
    with pytest.raises(asyncio.CancelledError):
        await h.run([text(), text()])
    assert len(h.port.calls) == 1
    h = Harness()
    h.port.errors["send_text"] = [asyncio.CancelledError()]
    with pytest.raises(asyncio.CancelledError):
        await h.run([{"act": "parallel", "items": [text(), text()]}])


# -- control primitives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "seconds"),
    [
        ({"act": "delay", "ms": 250}, [0.25]),
        ({"act": "delay", "delayMs": 300}, [0.3]),
        ({"act": "delay", "seconds": 2}, [2.0]),
        ({"act": "delay", "sec": "1.5"}, [1.5]),
        ({"act": "delay", "ms": "{{count}}00"}, [0.3]),  # numeric strings, e.g. from templates
        ({"act": "delay", "ms": "soon", "delayMs": 400, "seconds": 9}, [0.4]),  # first numeric wins
        ({"act": "delay", "ms": 100, "seconds": 9}, [0.1]),
        ({"act": "delay"}, [1.2]),
        ({"act": "delay", "ms": 0}, []),
        ({"act": "delay", "ms": -5}, []),
    ],
)
async def test_delay(entry: dict[str, Any], seconds: list[float]) -> None:
    h = Harness()
    assert only(await h.run([entry])) == ActionResult("0", "delay", True)
    assert h.sleeps.durations == seconds
    assert h.port.calls == []


async def test_delay_with_a_presence_state() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "delay", "ms": 700, "state": "composing", "to": "081234567890"},
            {"act": "delay", "seconds": 1, "state": "Recording", "chat": LID},
            {"act": "delay", "ms": 700, "state": "composing"},
            {"act": "delay", "ms": 700, "state": "paused", "to": CHAT},
        ]
    )
    assert [(r.ok, r.error) for r in results] == [
        (True, None),
        (True, None),
        (False, "to: a chat is required (to, chat or jid)"),
        (False, "state: must be composing or recording"),
    ]
    assert h.port.calls == [
        ("presence", "available", None),
        ("presence", "composing", CHAT),
        ("presence", "paused", CHAT),
        ("presence", "available", None),
        ("presence", "recording", LID),
        ("presence", "paused", LID),
    ]
    assert h.sleeps.durations == [0.7, 1.0]


async def test_typing() -> None:
    h = Harness(default_delay_ms=900)
    results = await h.run(
        [{"act": "typing", "jid": GROUP, "ms": 300}, {"act": "typing", "to": CHAT}, {"act": "typing"}]
    )
    assert [r.error for r in results] == [None, None, "to: a chat is required (to, chat or jid)"]
    assert h.port.calls == [
        ("presence", "available", None),
        ("presence", "composing", GROUP),
        ("presence", "paused", GROUP),
        ("presence", "available", None),
        ("presence", "composing", CHAT),
        ("presence", "paused", CHAT),
    ]
    assert h.sleeps.durations == [0.3, 0.9]


async def test_presence() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "presence"},
            {"act": "presence", "status": "Unavailable"},
            {"act": "presence", "state": "composing", "to": LID},
            {"act": "presence", "state": "dancing"},
        ]
    )
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].error == "state: must be one of available, unavailable, composing, recording, paused"
    assert h.port.calls == [
        ("presence", "available", None),
        ("presence", "unavailable", None),
        ("presence", "composing", LID),
    ]


KEY = {"id": "{{message.key.id}}", "remoteJid": "{{message.key.remoteJid}}", "fromMe": False}


async def test_react_targets_a_message() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "react", "key": KEY, "emoji": "👍"},
            {"act": "react", "id": "M2", "to": GROUP, "text": "🔥"},
            {"act": "react", "messageId": "M3", "key": {"remoteJid": LID}, "reaction": "❤"},
            {"act": "react", "key": {"id": "M4", "remoteJid": CHAT}, "chat": "081111111111", "emoji": "😀"},
        ]
    )
    assert all(r.ok for r in results)
    assert h.port.calls == [
        ("react", CHAT, "ABC123", "👍"),
        ("react", GROUP, "M2", "🔥"),
        ("react", LID, "M3", "❤"),
        ("react", "6281111111111@s.whatsapp.net", "M4", "😀"),  # to/chat/jid win over key.remoteJid
    ]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            {"act": "react", "to": CHAT, "emoji": "👍"},
            "key: a message id is required (key.id, id or messageId)",
        ),
        (
            {"act": "react", "key": {"id": "X"}, "emoji": "👍"},
            "to: a chat is required (to, chat, jid or key.remoteJid)",
        ),
        (
            {"act": "react", "key": {"id": "X", "remoteJid": "zz@x.y"}, "emoji": "👍"},
            "key.remoteJid: 'zz@x.y' has an unknown server '@x.y'",
        ),
        (
            {"act": "react", "key": {"id": "X", "remoteJid": CHAT}},
            "emoji: is required (text, emoji or reaction)",
        ),
        (
            {"act": "react", "key": {"id": "X", "remoteJid": CHAT}, "emoji": "{{missing}}"},
            "emoji: is required (text, emoji or reaction)",
        ),
        ({"act": "star", "key": "ABC"}, "key: a message id is required (key.id, id or messageId)"),
        ({"act": "delete", "id": "X"}, "to: a chat is required (to, chat, jid or key.remoteJid)"),
        ({"act": "revoke", "to": CHAT}, "key: a message id is required (key.id, id or messageId)"),
        ({"act": "edit", "key": {"id": "X", "remoteJid": CHAT}}, "message: is required (message or text)"),
        (
            {"act": "edit", "key": {"id": "X", "remoteJid": CHAT}, "message": {"text": "x"}},
            "message: must be a non-empty string",
        ),
    ],
)
async def test_message_actions_report_missing_fields(entry: dict[str, Any], error: str) -> None:
    h = Harness()
    assert only(await h.run([entry])) == ActionResult("0", entry["act"], False, error)
    assert h.port.calls == []


async def test_star_unstar_delete_revoke_edit() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "star", "key": KEY},
            {"type": "unstar", "id": "M1", "to": CHAT},
            {"act": "delete", "key": KEY, "withMedia": False},
            {"act": "revoke", "key": {"id": "M2", "remoteJid": GROUP}},
            {"act": "revoke", "key": {"id": "M3", "remoteJid": GROUP}, "deleteForMe": True},
            {"act": "edit", "key": KEY, "text": "fixed: {{text}}"},
            {"act": "edit", "id": "M4", "jid": LID, "message": "new", "text": "ignored"},
        ]
    )
    assert [(r.kind, r.ok) for r in results] == [
        ("star", True),
        ("unstar", True),
        ("delete", True),
        ("revoke", True),
        ("revoke", True),
        ("edit", True),
        ("edit", True),
    ]
    assert h.port.calls == [
        ("star", CHAT, "ABC123", True),
        ("star", CHAT, "M1", False),
        ("delete_for_me", CHAT, "ABC123"),
        ("revoke", GROUP, "M2"),
        ("revoke", GROUP, "M3"),
        ("delete_for_me", GROUP, "M3"),
        ("edit", CHAT, "ABC123", "fixed: ping"),
        ("edit", LID, "M4", "new"),
    ]
    assert h.sleeps.durations == []


async def test_read_groups_message_ids_by_chat() -> None:
    h = Harness()
    results = await h.run(
        [
            {
                "act": "read",
                "keys": [
                    {"id": "A", "remoteJid": CHAT},
                    {"id": "B", "remoteJid": GROUP},
                    {"id": "C", "remoteJid": CHAT},
                ],
            },
            {"act": "read", "to": LID, "keys": [{"id": "D"}, {"id": "E"}]},
            {"act": "read", "key": KEY},
            {"act": "read", "keys": [{"id": "F", "remoteJid": CHAT}, {"remoteJid": CHAT}]},
            {"act": "read", "keys": []},
        ]
    )
    assert [r.error for r in results] == [
        None,
        None,
        None,
        "keys.1: must be a message key with an id",
        "keys: must be a non-empty list of message keys",
    ]
    assert h.port.calls == [
        ("read", CHAT, ["A", "C"]),
        ("read", GROUP, ["B"]),
        ("read", LID, ["D", "E"]),
        ("read", CHAT, ["ABC123"]),
    ]


async def test_queue_pauses_between_items_only_and_reports_each() -> None:
    h = Harness()
    results = await h.run(
        [
            {
                "act": "queue",
                "delayMs": 250,
                "items": [text(body="a"), {"act": "delay", "ms": 100}, text(body="b")],
            },
            {"act": "queue", "items": [text(body="c"), text(body="d")]},
        ]
    )
    assert [(r.path, r.kind, r.ok) for r in results] == [
        ("0", "queue", True),
        ("0.items.0", "text", True),
        ("0.items.1", "delay", True),
        ("0.items.2", "text", True),
        ("1", "queue", True),
        ("1.items.0", "text", True),
        ("1.items.1", "text", True),
    ]
    # 250 between the three items, the delay's own 100, no automatic pause inside a queue and
    # none after a top-level queue (it is a control entry)
    assert h.sleeps.durations == [0.25, 0.1, 0.25]
    assert [c[2] for c in h.port.calls] == ["a", "b", "c", "d"]


async def test_a_failing_queue_item_does_not_stop_the_rest() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("nope")]
    results = await h.run(
        [{"act": "queue", "items": [text(body="a"), {"type": "poll", "to": CHAT}, text(body="c")]}]
    )
    assert results == [
        ActionResult("0", "queue", False, "2 of 3 items failed"),
        ActionResult("0.items.0", "text", False, "nope"),
        ActionResult("0.items.1", "poll", False, "message: is required"),
        ActionResult("0.items.2", "text", True, message_id="MSG1"),
    ]


async def test_queue_items_must_be_a_list() -> None:
    assert (
        only(await Harness().run([{"act": "queue", "items": "text"}])).error
        == "items: must be a list of actions"
    )


async def test_parallel_runs_children_concurrently_and_reports_each() -> None:
    release = asyncio.Event()

    class WaitingPort(FakePort):
        async def react(self, chat: Jid, message_id: str, emoji: str) -> None:
            await release.wait()  # finishes only if a sibling runs meanwhile
            await super().react(chat, message_id, emoji)

        async def presence(self, state: str, to: Jid | None) -> None:
            await super().presence(state, to)
            release.set()

    h = Harness()
    h.port = WaitingPort()
    h.port.errors["send_text"] = [Boom("first send failed")]
    h.runner = ActionRunner(h.port, sleep=h.sleeps)
    results = await asyncio.wait_for(
        h.run(
            [
                {
                    "act": "parallel",
                    "items": [
                        {"act": "react", "key": KEY, "emoji": "👀"},
                        text(body="x"),
                        {"act": "presence"},
                        text(body="y"),
                    ],
                }
            ]
        ),
        timeout=2,
    )
    assert results == [
        ActionResult("0", "parallel", False, "1 of 4 items failed"),
        ActionResult("0.items.0", "react", True),
        ActionResult("0.items.1", "text", False, "first send failed"),
        ActionResult("0.items.2", "presence", True),
        ActionResult("0.items.3", "text", True, message_id="MSG1"),
    ]
    assert [c[0] for c in h.port.calls] == ["send_text", "presence", "send_text", "react"]


@pytest.mark.parametrize(
    ("condition", "truthy"),
    [
        (True, True),
        (False, False),
        (1, True),
        (-2.5, True),
        (0, False),
        (0.0, False),
        ("yes", True),
        ("ping", True),
        ("", False),
        ("   ", False),
        ("0", False),
        ("false", False),
        (" FALSE ", False),
        ("null", False),
        ("undefined", False),
        ("No", False),
        ("{{text}}", True),
        ("{{missing}}", False),
        (None, False),
        ([], False),
        (["x"], True),
        ({"a": 1}, True),
    ],
)
async def test_when_truthiness(condition: Any, truthy: bool) -> None:
    h = Harness()
    results = await h.run(
        [{"act": "when", "cond": condition, "then": [text(body="then")], "else": [text(body="else")]}]
    )
    assert [c[2] for c in h.port.calls] == ["then" if truthy else "else"]
    assert results[1].path == ("0.then.0" if truthy else "0.else.0")


async def test_when_aliases_and_missing_branches() -> None:
    h = Harness()
    results = await h.run(
        [
            {"act": "when", "condition": "1", "do": [text(body="do")]},
            {"act": "when", "condition": "1", "items": [text(body="items")]},
            {"act": "when", "cond": "no", "otherwise": [text(body="otherwise"), text(body="more")]},
            {"act": "when", "cond": "no", "then": [text(body="never")]},
            {"act": "when", "cond": "yes", "then": text(body="single")},
        ]
    )
    assert [c[2] for c in h.port.calls] == ["do", "items", "otherwise", "more", "single"]
    assert [r.path for r in results] == [
        "0",
        "0.do.0",
        "1",
        "1.items.0",
        "2",
        "2.otherwise.0",
        "2.otherwise.1",
        "3",
        "4",
        "4.then",
    ]
    assert all(r.ok for r in results)
    assert h.sleeps.durations == []  # nested sends get no automatic pause


async def test_retry_succeeds_on_a_later_attempt() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("busy"), Boom("still busy")]
    results = await h.run([{"act": "retry", "item": text(), "onFail": [text(body="fallback")]}])
    assert results == [
        ActionResult("0", "retry", True),
        ActionResult("0.item", "text", True, message_id="MSG1"),
    ]
    assert len(h.port.calls) == 3
    assert h.sleeps.durations == [0.5, 0.5]


async def test_retry_exhaustion_runs_on_fail() -> None:
    h = Harness()
    h.port.errors["react"] = [Boom("gone")] * 5
    results = await h.run(
        [
            {
                "act": "retry",
                "items": [{"act": "react", "key": KEY, "emoji": "👍"}, text(body="ignored")],
                "times": 2,
                "backoffMs": 50,
                "onFail": [text(body="sorry"), {"act": "presence"}],
            }
        ]
    )
    assert results == [
        ActionResult("0", "retry", False, "gave up after 2 attempts: gone"),
        ActionResult("0.items.0", "react", False, "gone"),
        ActionResult("0.onFail.0", "text", True, message_id="MSG1"),
        ActionResult("0.onFail.1", "presence", True),
    ]
    assert [c[0] for c in h.port.calls] == ["react", "react", "send_text", "presence"]
    assert h.sleeps.durations == [0.05]


async def test_retry_attempts_are_capped() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("x")] * 20
    result = (await h.run([{"act": "retry", "item": text(), "attempts": 99, "delayMs": 10}]))[0]
    assert result.error == f"gave up after {MAX_ATTEMPTS} attempts: x"
    assert len(h.port.calls) == MAX_ATTEMPTS
    assert h.sleeps.durations == [0.01] * (MAX_ATTEMPTS - 1)
    h = Harness()
    h.port.errors["send_text"] = [Boom("x")]
    result = (await h.run([{"act": "retry", "item": text(), "attempts": 0}]))[0]
    assert (result.error, len(h.port.calls), h.sleeps.durations) == ("gave up after 1 attempts: x", 1, [])


async def test_retry_of_a_queue_repeats_the_whole_queue() -> None:
    h = Harness()
    h.port.errors["send_text"] = [Boom("late")]
    results = await h.run(
        [{"act": "retry", "item": {"act": "queue", "items": [{"act": "presence"}, text()]}}]
    )
    assert [c[0] for c in h.port.calls] == ["presence", "send_text", "presence", "send_text"]
    assert [(r.path, r.ok) for r in results] == [
        ("0", True),
        ("0.item", True),
        ("0.item.items.0", True),
        ("0.item.items.1", True),
    ]


async def test_retry_needs_an_item() -> None:
    h = Harness()
    assert only(await h.run([{"act": "retry", "items": []}])).error == "item: is required (item or items[0])"
    assert h.sleeps.durations == []
