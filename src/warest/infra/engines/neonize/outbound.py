"""Port commands → neonize arguments: text messages, replies, mentions and chat presence.

Messages are built here as protobufs rather than passed to neonize as strings, because
neonize's string path guesses mentions from "@digits" in the text and may fetch link
previews over the network; the port gives mentions explicitly and wants neither.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, ExtendedTextMessage
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as E2EMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia

from warest.app.engine import EngineError, OutboundText

PRESENCE: dict[str, tuple[ChatPresence, ChatPresenceMedia]] = {
    "composing": (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
    "recording": (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO),
    "paused": (ChatPresence.CHAT_PRESENCE_PAUSED, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
}


def presence_args(state: str) -> tuple[ChatPresence, ChatPresenceMedia]:
    try:
        return PRESENCE[state]
    except KeyError:
        raise EngineError(
            f"unknown chat presence '{state}' (composing, recording or paused)", code="invalid_presence"
        ) from None


class Quotable:
    """A remembered message that a reply can quote: who sent it and what it said.

    WhatsApp renders a reply from ``stanzaID`` + ``participant`` + ``quotedMessage``;
    with only the id, phones show the reply without the quoted bubble.
    """

    __slots__ = ("message", "participant")

    def __init__(self, participant: str, message: Any) -> None:
        self.participant = participant
        self.message = message


class RecentMessages:
    """The last ``size`` messages seen or sent, by WhatsApp id, for quoting in replies."""

    def __init__(self, size: int = 1000) -> None:
        self._size = size
        self._items: OrderedDict[str, Quotable] = OrderedDict()

    def remember(self, wa_id: str, participant: str, message: Any) -> None:
        self._items[wa_id] = Quotable(participant, message)
        self._items.move_to_end(wa_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, wa_id: str) -> Quotable | None:
        return self._items.get(wa_id)


def quotable(message: E2EMessage) -> E2EMessage:
    """A copy of ``message`` fit to be quoted: without its own context (no nested quotes)."""
    copy = E2EMessage()
    copy.CopyFrom(message)
    for field, value in copy.ListFields():
        if field.message_type is not None and "contextInfo" in field.message_type.fields_by_name:
            value.ClearField("contextInfo")
    return copy


def text_message(text: OutboundText, quoted: Quotable | None) -> E2EMessage:
    """The protobuf for a text: plain ``conversation`` unless it mentions or replies."""
    if not text.mentions and not text.reply_to:
        return E2EMessage(conversation=text.text)
    context = ContextInfo(mentionedJID=list(text.mentions))
    if text.reply_to:
        context.stanzaID = text.reply_to
        if quoted is not None:
            context.participant = quoted.participant
            context.quotedMessage.CopyFrom(quoted.message)
    return E2EMessage(extendedTextMessage=ExtendedTextMessage(text=text.text, contextInfo=context))
