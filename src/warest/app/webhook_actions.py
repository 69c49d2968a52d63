"""Actions-in-response: run the ``actions`` a webhook receiver puts in its 2xx JSON reply.

A receiver may answer a delivery with ``{"actions": [...], "delayMs": n}``; the gateway then runs
those entries for the session the webhook was about. The schema is the original WAREST one
(reference §3), the defects are not:

* ``parse_reply`` decodes the body; the limits are checked up front, when the ``Reply`` is built
  (``MAX_ACTIONS`` entries in total, nested included; ``MAX_DEPTH`` levels; every entry an object;
  ``delayMs`` an integer in ``0..MAX_DELAY_MS``). A breach raises ``ActionsInvalid`` and nothing
  runs; since the checks live in ``Reply.__post_init__``, every ``Reply`` is within the limits.
* ``render`` fills ``{{ path }}`` templates in string values (never in keys) from
  ``template_context`` = ``{...body, ...body["data"]}``. A path walks mappings by key and lists by
  index (``mentions.0``); missing or null gives ``""``; numbers and booleans are written the
  JavaScript way (``1``, ``1.5``, ``true``). Objects and lists give ``""`` where the original wrote
  ``[object Object]`` / ``a,b``: neither is a useful value and dumping a structure would let message
  content decide keys or whole objects. Rendering is one pass, done once per top-level entry
  (nested entries included) just before it runs, so text that itself looks like ``{{ ... }}``
  (e.g. the incoming message) is never expanded a second time.
* Dispatch (§3.2): an entry whose ``act``, ``action`` or ``type`` (first non-empty, lower-cased) is
  a control primitive runs as that primitive; otherwise it is a send dispatched on ``type``. Only
  ``text`` can be sent for now; the other original send kinds are validated (``to`` and their
  required fields) and then fail with "send kind '<x>' is not available yet".
* Recipients go through ``Jid.parse``: ``@lid`` and ``@g.us`` are kept, ``@c.us`` is mapped and bare
  numbers get the default country code (the original turned ``@lid`` into a bogus phone JID).
* Every entry yields one ``ActionResult`` (containers first, then their children's results), and a
  missing field is a clear error where the original silently skipped the entry. A failing entry
  (validation error or the port raising) never stops the next one; that holds inside ``queue``,
  ``when`` and ``onFail`` too, where the original abandoned the rest of the list, and inside
  ``parallel`` (``asyncio.gather`` with ``return_exceptions``): the original's ``Promise.all``
  rejected the whole primitive on the first failure and lost the other children's outcomes, here
  every child runs to its end and is reported. A container is ok when all its children are.
  ``retry`` that gives up is a failure after running ``onFail`` (the original treated it as done).
  ``asyncio.CancelledError`` is never swallowed.
* Pauses: after a top-level entry that is not a control primitive (a send, a ``noop``) and
  succeeded, the runner waits ``delayMs`` (else the default), except after the last entry (the
  original also waited then). Nested sends get no automatic pause, as in the original. ``delayMs:
  0`` means no pause (the original fell back to the default). Every sleep goes through the
  injected ``sleep`` and is capped at ``max_delay_ms``; retries are capped at ``MAX_ATTEMPTS``.

The runner only talks to an ``ActionPort``, one ordinary command per call for one session, so the
gateway's own rules (ownership, queue, limits) apply to these actions as to any other command.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from warest.domain.errors import InvalidValue
from warest.domain.jid import Jid, recipients
from warest.domain.text import checked

MAX_ACTIONS = 50
MAX_DEPTH = 4
MAX_DELAY_MS = 60_000
MAX_ATTEMPTS = 10
MAX_VALUE_NESTING = 32  # any JSON value inside the actions; keeps rendering shallow

CONTROL_PRIMITIVES = frozenset(
    {"delay", "queue", "parallel", "when", "retry", "typing", "presence"}
    | {"react", "read", "star", "unstar", "delete", "revoke", "edit"}
)
PRESENCE_STATES = ("available", "unavailable", "composing", "recording", "paused")
CHILD_KEYS = ("items", "item", "then", "do", "else", "otherwise", "onFail")

# Send kinds of the original that are recognised but not available yet: each tuple of fields is
# "one of these is required".
UNAVAILABLE_KINDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "media": (("mediaType",), ("url",)),
    "document": (("url",),),
    "location": (("lat",), ("lng",)),
    "sticker": (("webpUrl", "imageUrl"),),
    "vcard": (("contact",),),
    "button": (("message", "buttons"),),
    "list": (("message", "list", "lists", "sections"),),
    "poll": (("message",),),
    "forward": (("message",),),
    "raw": (("message",),),
}
MEDIA_TYPES = ("image", "video", "gif", "audio")

_CHAT_KEYS = ("to", "chat", "jid")
_DELAY_SOURCES = (("ms", 1), ("delayMs", 1), ("seconds", 1000), ("sec", 1000))
_FALSY_WORDS = frozenset({"", "0", "false", "null", "undefined", "no"})
_TEMPLATE = re.compile(r"\{\{([^}]+)\}\}")
_INDEX = re.compile(r"0|[1-9][0-9]*")


class ActionsInvalid(InvalidValue):
    """The reply's actions break the schema or a limit; none of them is run."""


class ActionPort(Protocol):
    """What the runner may do; every call is an ordinary command for one session."""

    async def send_text(self, to: Jid, text: str, mentions: list[str], reply_to: str | None) -> str:
        """Sends a text message and returns its message id."""
        ...

    async def react(self, chat: Jid, message_id: str, emoji: str) -> None: ...
    async def star(self, chat: Jid, message_id: str, starred: bool) -> None: ...
    async def delete_for_me(self, chat: Jid, message_id: str) -> None: ...
    async def revoke(self, chat: Jid, message_id: str) -> None: ...
    async def edit(self, chat: Jid, message_id: str, text: str) -> None: ...
    async def read(self, chat: Jid, message_ids: list[str]) -> None: ...

    async def presence(self, state: str, to: Jid | None) -> None:
        """available, unavailable, composing, recording or paused (to a chat when given)."""
        ...


@dataclass(frozen=True)
class ActionResult:
    path: str  # where the entry is in the reply: "0", "2.items.0", "3.then.1", "4.item"
    kind: str  # "text", "react", "delay", "when", ...
    ok: bool
    error: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Reply:
    actions: list[dict[str, Any]]
    delay_ms: int | None

    def __post_init__(self) -> None:
        _check_actions(self.actions)
        _check_delay(self.delay_ms)


# -- parsing and limits ---------------------------------------------------------------------------


def parse_reply(body: bytes, content_type: str | None) -> Reply | None:
    """The actions in a receiver's reply, or None when it carries none.

    None for a body that is not a JSON object or has no ``actions`` (``null`` counts as none), and
    for a declared content type that cannot be JSON text. Like the original (axios parses any
    body), ``text/*`` and a missing type are still tried: many receivers reply with JSON labelled
    ``text/html``. Raises ``ActionsInvalid`` when the actions or ``delayMs`` break the rules.
    """
    if not _may_be_json(content_type):
        return None
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(decoded, dict) or decoded.get("actions") is None:
        return None
    return Reply(actions=decoded["actions"], delay_ms=decoded.get("delayMs"))


def _may_be_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return "json" in media_type or media_type.startswith("text/")


def _check_delay(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DELAY_MS:
        raise ActionsInvalid("delayMs", f"must be an integer from 0 to {MAX_DELAY_MS}")


def _check_actions(actions: object) -> None:
    if not isinstance(actions, list):
        raise ActionsInvalid("actions", "must be a list")
    total = _count(actions, "actions", 1)
    if total > MAX_ACTIONS:
        raise ActionsInvalid("actions", f"at most {MAX_ACTIONS} entries (nested included), not {total}")
    if _nesting(actions, 0) > MAX_VALUE_NESTING:
        raise ActionsInvalid("actions", f"values may be nested at most {MAX_VALUE_NESTING} levels deep")


def _count(entries: list[Any], prefix: str, depth: int) -> int:
    """Entries in ``entries`` and below; checks that each is an object within ``MAX_DEPTH``."""
    total = 0
    for index, entry in enumerate(entries):
        path = f"{prefix}.{index}"
        if depth > MAX_DEPTH:
            raise ActionsInvalid(path, f"actions may be nested at most {MAX_DEPTH} levels deep")
        if not isinstance(entry, dict):
            raise ActionsInvalid(path, "must be an object")
        total += 1
        for key in CHILD_KEYS:
            children = entry.get(key)
            if isinstance(children, dict):
                children = [children]
            if isinstance(children, list):
                total += _count(children, f"{path}.{key}", depth + 1)
    return total


def _nesting(value: object, depth: int) -> int:
    """How deep ``value`` nests, stopping early once past ``MAX_VALUE_NESTING``."""
    if depth > MAX_VALUE_NESTING or not isinstance(value, dict | list):
        return depth
    children = value.values() if isinstance(value, dict) else value
    return max((_nesting(child, depth + 1) for child in children), default=depth)


# -- templates ------------------------------------------------------------------------------------


def template_context(body: Mapping[str, Any]) -> dict[str, Any]:
    """``{...body, ...body["data"]}``: payload keys are also reachable directly and win clashes."""
    data = body.get("data")
    return {**body, **(data if isinstance(data, Mapping) else {})}


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with ``{{ path }}`` replaced in every string (keys and non-strings untouched)."""
    if isinstance(value, str):
        return _TEMPLATE.sub(lambda match: _scalar_text(_lookup(context, match.group(1))), value)
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.strip().split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and _INDEX.fullmatch(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _scalar_text(value: Any) -> str:
    """Text for a found value: scalars as JavaScript's ``String()``; anything else (objects,
    lists, null) as ``""`` so that no structure is ever serialised into an action."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return ""


# -- small readers --------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    """§3.4: booleans as-is, numbers other than 0, strings other than "", "0", "false", "null",
    "undefined", "no" (trimmed, any case); null is false, lists and objects when not empty."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_WORDS
    return bool(value)


def _number(value: Any) -> float | None:
    """A finite number from a number or a numeric string (templates render to strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _first_number(entry: Mapping[str, Any], default: int, sources: tuple[tuple[str, int], ...]) -> int:
    """The first numeric value among ``sources`` (key, factor), as an int; else ``default``."""
    for key, factor in sources:
        number = _number(entry.get(key))
        if number is not None:
            return int(number * factor)
    return default


def _text_of(value: Any, field: str = "value") -> str | None:
    """A stripped, non-blank string (integers written out), else None; a string that breaks
    the text rule (NUL, unpaired surrogates, too long) is refused naming ``field``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return checked(value.strip(), field)
    return None


def _content(entry: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """Message text from the first present key; it must not be blank."""
    for key in keys:
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _scalar_text(value)
        if isinstance(value, str) and value.strip():
            return checked(value, key)
        raise InvalidValue(key, "must be a non-empty string")
    raise InvalidValue(keys[0], f"is required ({' or '.join(keys)})")


def _entries(entry: Mapping[str, Any], key: str) -> list[tuple[str, Any]]:
    """Nested entries under ``key`` with their path suffix; an object counts as one entry."""
    value = entry.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        return [(key, value)]
    if isinstance(value, list):
        return [(f"{key}.{index}", item) for index, item in enumerate(value)]
    raise InvalidValue(key, "must be a list of actions")


def _first_present(entry: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if entry.get(key) is not None), None)


def _primitive(entry: Mapping[str, Any]) -> str:
    for key in ("act", "action", "type"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return ""


def _kind(entry: Any) -> str:
    """The dispatch name of an entry (§3.2): a control primitive, else its ``type``."""
    if not isinstance(entry, dict):
        return "invalid"
    name = _primitive(entry)
    if name in CONTROL_PRIMITIVES:
        return name
    declared = entry.get("type")
    return declared.strip().lower() if isinstance(declared, str) and declared.strip() else name


def _failed(failed: int, total: int) -> str | None:
    return f"{failed} of {total} items failed" if failed else None


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class _Done:
    """How an entry ended: its error (None = ok), a sent message id and its children's results."""

    error: str | None = None
    message_id: str | None = None
    children: tuple[ActionResult, ...] = ()


_Handler = Callable[[dict[str, Any], str], Awaitable[_Done]]


# -- the runner -----------------------------------------------------------------------------------


class ActionRunner:
    def __init__(
        self,
        port: ActionPort,
        *,
        default_country_code: str = "62",
        default_delay_ms: int = 1200,
        max_delay_ms: int = 60_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._port = port
        self._country = default_country_code
        self._default_delay_ms = default_delay_ms
        self._max_delay_ms = max_delay_ms
        self._sleep = sleep
        self._handlers: dict[str, _Handler] = {
            "text": self._text,
            "noop": self._noop,
            "delay": self._delay,
            "typing": self._typing,
            "presence": self._presence,
            "react": self._react,
            "star": self._star,
            "unstar": self._unstar,
            "delete": self._delete,
            "revoke": self._revoke,
            "edit": self._edit,
            "read": self._read,
            "queue": self._queue,
            "parallel": self._parallel,
            "when": self._when,
            "retry": self._retry,
        }

    async def run(self, reply: Reply, context: Mapping[str, Any]) -> list[ActionResult]:
        """Runs the entries in order; one result per entry, nested entries included."""
        gap_ms = self._default_delay_ms if reply.delay_ms is None else reply.delay_ms
        results: list[ActionResult] = []
        last = len(reply.actions) - 1
        for index, raw in enumerate(reply.actions):
            batch = await self._run_entry(render(raw, context), str(index))
            results.extend(batch)
            own = batch[0]
            if index < last and own.ok and own.kind not in CONTROL_PRIMITIVES:
                await self._pause(gap_ms)
        return results

    async def _run_entry(self, entry: Any, path: str) -> list[ActionResult]:
        """The entry's own result followed by its children's; an Exception becomes a failure."""
        kind = _kind(entry)
        try:
            done = await self._dispatch(kind, entry, path)
        except Exception as exc:  # the port's or a validation error: reported, the next entry runs
            return [ActionResult(path, kind, ok=False, error=_describe(exc))]
        own = ActionResult(path, kind, ok=done.error is None, error=done.error, message_id=done.message_id)
        return [own, *done.children]

    async def _dispatch(self, kind: str, entry: Any, path: str) -> _Done:
        if not isinstance(entry, dict):
            raise InvalidValue("action", "must be an object")
        if not kind:
            raise InvalidValue("type", "is required")
        handler = self._handlers.get(kind)
        if handler is not None:
            return await handler(entry, path)
        if kind in UNAVAILABLE_KINDS:
            self._check_unavailable(kind, entry)
            return _Done(error=f"send kind '{kind}' is not available yet")
        return _Done(error=f"unknown action type '{kind}'")

    async def _pause(self, ms: int) -> None:
        ms = min(ms, self._max_delay_ms)
        if ms > 0:
            await self._sleep(ms / 1000)

    # -- addresses --------------------------------------------------------------------------------

    def _jid(self, source: Mapping[str, Any], keys: tuple[str, ...], prefix: str = "") -> Jid | None:
        for key in keys:
            raw = _text_of(source.get(key), prefix + key)
            if raw is not None:
                return Jid.parse(raw, self._country, field=prefix + key)
        return None

    def _chat(self, entry: Mapping[str, Any]) -> Jid:
        chat = self._jid(entry, _CHAT_KEYS)
        if chat is None:
            raise InvalidValue("to", "a chat is required (to, chat or jid)")
        return chat

    def _message_ref(self, entry: Mapping[str, Any]) -> tuple[Jid, str]:
        """The targeted message: ``key{id, remoteJid}`` or ``id``/``messageId`` plus the chat."""
        key = entry.get("key")
        key = key if isinstance(key, dict) else {}
        message_id = _text_of(key.get("id")) or _text_of(entry.get("id")) or _text_of(entry.get("messageId"))
        if message_id is None:
            raise InvalidValue("key", "a message id is required (key.id, id or messageId)")
        chat = self._jid(entry, _CHAT_KEYS) or self._jid(key, ("remoteJid",), prefix="key.")
        if chat is None:
            raise InvalidValue("to", "a chat is required (to, chat, jid or key.remoteJid)")
        return chat, message_id

    def _check_unavailable(self, kind: str, entry: Mapping[str, Any]) -> None:
        """Validates a recognised but unavailable send so the receiver learns about its mistakes."""
        if self._jid(entry, ("to",)) is None:
            raise InvalidValue("to", "is required")
        for fields in UNAVAILABLE_KINDS[kind]:
            if all(entry.get(field) in (None, "") for field in fields):
                reason = "is required" if len(fields) == 1 else f"one of {', '.join(fields)} is required"
                raise InvalidValue(fields[0], reason)
        if kind == "media" and str(entry.get("mediaType")).lower() not in MEDIA_TYPES:
            raise InvalidValue("mediaType", f"must be one of {', '.join(MEDIA_TYPES)}")

    # -- sends ------------------------------------------------------------------------------------

    async def _text(self, entry: dict[str, Any], path: str) -> _Done:
        to = self._jid(entry, ("to",))
        if to is None:
            raise InvalidValue("to", "is required")
        text = _content(entry, ("text",))
        mentions = self._mentions(entry.get("mentions"))
        message_id = await self._port.send_text(to, text, mentions, _quoted_id(entry))
        return _Done(message_id=message_id)

    def _mentions(self, raw: Any) -> list[str]:
        if raw is None or raw in ([], ""):
            return []
        return [str(jid) for jid in recipients(raw, self._country, field="mentions")]

    async def _noop(self, entry: dict[str, Any], path: str) -> _Done:
        return _Done()

    # -- presence and waiting ---------------------------------------------------------------------

    async def _delay(self, entry: dict[str, Any], path: str) -> _Done:
        ms = _first_number(entry, self._default_delay_ms, _DELAY_SOURCES)
        state = _text_of(entry.get("state"))
        if state is None:
            await self._pause(ms)
            return _Done()
        if state.lower() not in ("composing", "recording"):
            raise InvalidValue("state", "must be composing or recording")
        await self._simulate(state.lower(), self._chat(entry), ms)
        return _Done()

    async def _typing(self, entry: dict[str, Any], path: str) -> _Done:
        chat = self._chat(entry)
        await self._simulate("composing", chat, _first_number(entry, self._default_delay_ms, _DELAY_SOURCES))
        return _Done()

    async def _simulate(self, state: str, chat: Jid, ms: int) -> None:
        await self._port.presence("available", None)
        await self._port.presence(state, chat)
        await self._pause(ms)
        await self._port.presence("paused", chat)

    async def _presence(self, entry: dict[str, Any], path: str) -> _Done:
        state = (_text_of(entry.get("state")) or _text_of(entry.get("status")) or "available").lower()
        if state not in PRESENCE_STATES:
            raise InvalidValue("state", f"must be one of {', '.join(PRESENCE_STATES)}")
        await self._port.presence(state, self._jid(entry, _CHAT_KEYS))
        return _Done()

    # -- message actions --------------------------------------------------------------------------

    async def _react(self, entry: dict[str, Any], path: str) -> _Done:
        chat, message_id = self._message_ref(entry)
        field = _first_present(entry, ("text", "emoji", "reaction"))
        emoji = _text_of(entry.get(field)) if field else None
        if emoji is None:
            raise InvalidValue("emoji", "is required (text, emoji or reaction)")
        await self._port.react(chat, message_id, emoji)
        return _Done()

    async def _star(self, entry: dict[str, Any], path: str) -> _Done:
        await self._port.star(*self._message_ref(entry), True)
        return _Done()

    async def _unstar(self, entry: dict[str, Any], path: str) -> _Done:
        await self._port.star(*self._message_ref(entry), False)
        return _Done()

    async def _delete(self, entry: dict[str, Any], path: str) -> _Done:
        await self._port.delete_for_me(*self._message_ref(entry))
        return _Done()

    async def _revoke(self, entry: dict[str, Any], path: str) -> _Done:
        chat, message_id = self._message_ref(entry)
        await self._port.revoke(chat, message_id)
        if _truthy(entry.get("deleteForMe")):
            await self._port.delete_for_me(chat, message_id)
        return _Done()

    async def _edit(self, entry: dict[str, Any], path: str) -> _Done:
        chat, message_id = self._message_ref(entry)
        await self._port.edit(chat, message_id, _content(entry, ("message", "text")))
        return _Done()

    async def _read(self, entry: dict[str, Any], path: str) -> _Done:
        grouped: dict[Jid, list[str]] = {}
        for chat, message_id in self._read_refs(entry):
            grouped.setdefault(chat, []).append(message_id)
        for chat, message_ids in grouped.items():
            await self._port.read(chat, message_ids)
        return _Done()

    def _read_refs(self, entry: dict[str, Any]) -> list[tuple[Jid, str]]:
        keys = entry.get("keys")
        if keys is None:
            return [self._message_ref(entry)]
        if not isinstance(keys, list) or not keys:
            raise InvalidValue("keys", "must be a non-empty list of message keys")
        chat_fields = {name: entry.get(name) for name in _CHAT_KEYS}
        refs: list[tuple[Jid, str]] = []
        for index, key in enumerate(keys):
            if not isinstance(key, dict) or _text_of(key.get("id")) is None:
                raise InvalidValue(f"keys.{index}", "must be a message key with an id")
            refs.append(self._message_ref({**chat_fields, "key": key}))
        return refs

    # -- flow -------------------------------------------------------------------------------------

    async def _sequence(self, children: list[tuple[str, Any]], path: str, gap_ms: int = 0) -> _Done:
        """Runs the entries one after another (``gap_ms`` between them); a failure does not stop
        the rest."""
        results: list[ActionResult] = []
        failed = 0
        for position, (suffix, child) in enumerate(children):
            if position:
                await self._pause(gap_ms)
            batch = await self._run_entry(child, f"{path}.{suffix}")
            failed += not batch[0].ok
            results.extend(batch)
        return _Done(error=_failed(failed, len(children)), children=tuple(results))

    async def _queue(self, entry: dict[str, Any], path: str) -> _Done:
        gap_ms = _first_number(entry, 0, (("delayMs", 1),))
        return await self._sequence(_entries(entry, "items"), path, gap_ms)

    async def _parallel(self, entry: dict[str, Any], path: str) -> _Done:
        children = _entries(entry, "items")
        outcomes = await asyncio.gather(
            *(self._run_entry(child, f"{path}.{suffix}") for suffix, child in children),
            return_exceptions=True,
        )
        results: list[ActionResult] = []
        failed = 0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):  # only cancellation gets past _run_entry
                raise outcome
            failed += not outcome[0].ok
            results.extend(outcome)
        return _Done(error=_failed(failed, len(children)), children=tuple(results))

    async def _when(self, entry: dict[str, Any], path: str) -> _Done:
        condition = entry.get("cond") if entry.get("cond") is not None else entry.get("condition")
        keys = ("then", "do", "items") if _truthy(condition) else ("else", "otherwise")
        branch = _first_present(entry, keys)
        return await self._sequence(_entries(entry, branch) if branch else [], path)

    async def _retry(self, entry: dict[str, Any], path: str) -> _Done:
        suffix, inner = self._retried(entry)
        attempts = _first_number(entry, 3, (("attempts", 1), ("times", 1)))
        attempts = max(1, min(attempts, MAX_ATTEMPTS))
        backoff_ms = _first_number(entry, 500, (("delayMs", 1), ("backoffMs", 1)))
        for attempt in range(1, attempts + 1):
            batch = await self._run_entry(inner, f"{path}.{suffix}")
            if batch[0].ok:
                return _Done(children=tuple(batch))
            if attempt < attempts:
                await self._pause(backoff_ms)
        fallback = await self._sequence(_entries(entry, "onFail"), path)
        error = f"gave up after {attempts} attempts: {batch[0].error}"
        return _Done(error=error, children=(*batch, *fallback.children))

    @staticmethod
    def _retried(entry: dict[str, Any]) -> tuple[str, Any]:
        """The single entry a retry repeats: ``item``, else ``items[0]``."""
        candidates = _entries(entry, "item") or _entries(entry, "items")[:1]
        if not candidates:
            raise InvalidValue("item", "is required (item or items[0])")
        return candidates[0]


def _quoted_id(entry: Mapping[str, Any]) -> str | None:
    """The message a text replies to: ``quoted``/``replyTo`` as an id, a key or a message."""
    for field in ("quoted", "replyTo"):
        value = entry.get(field)
        if isinstance(value, dict):
            key = value.get("key")
            value = key.get("id") if isinstance(key, dict) else value.get("id")
        found = _text_of(value)
        if found is not None:
            return found
    return None
