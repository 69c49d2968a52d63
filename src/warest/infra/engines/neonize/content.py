"""What a WhatsApp message says: its kind, text, mentions and quoted message.

whatsmeow already unwraps ephemeral / view-once / document-with-caption envelopes before
neonize hands a message over, but the same wrappers still appear inside edits and in
history, so this module unwraps them again rather than trusting one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as E2EMessage

# Envelopes whose ``message`` field holds the real content.
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "lottieStickerMessage",
    "groupMentionedMessage",
    "botInvokeMessage",
    "editedMessage",
)

# Content fields in priority order, with the port's kind for each. The first one present
# wins: a message may also carry a senderKeyDistributionMessage or messageContextInfo.
_KINDS: tuple[tuple[str, str], ...] = (
    ("conversation", "text"),
    ("extendedTextMessage", "text"),
    ("imageMessage", "image"),
    ("videoMessage", "video"),
    ("ptvMessage", "video"),
    ("audioMessage", "audio"),
    ("documentMessage", "document"),
    ("stickerMessage", "sticker"),
    ("locationMessage", "location"),
    ("liveLocationMessage", "location"),
    ("contactMessage", "contact"),
    ("contactsArrayMessage", "contact"),
    ("pollCreationMessage", "poll"),
    ("pollCreationMessageV2", "poll"),
    ("pollCreationMessageV3", "poll"),
    ("pollCreationMessageV4", "poll"),
    ("pollCreationMessageV5", "poll"),
    ("pollCreationMessageV6", "poll"),
    ("reactionMessage", "reaction"),
)

# The field holding the human text of each content type (captions for media, the question
# of a poll, the emoji of a reaction). Types missing here carry no text.
_TEXT_FIELD = {
    "extendedTextMessage": "text",
    "imageMessage": "caption",
    "videoMessage": "caption",
    "ptvMessage": "caption",
    "documentMessage": "caption",
    "liveLocationMessage": "caption",
    "pollCreationMessage": "name",
    "pollCreationMessageV2": "name",
    "pollCreationMessageV3": "name",
    "pollCreationMessageV4": "name",
    "pollCreationMessageV5": "name",
    "pollCreationMessageV6": "name",
    "reactionMessage": "text",
}

# Fields that travel alongside content but are never content on their own.
_ENVELOPE_ONLY = frozenset(
    {"senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage", "messageContextInfo"}
)


@dataclass(frozen=True)
class Content:
    kind: str
    text: str | None = None
    mentions: tuple[str, ...] = ()
    quoted_id: str | None = None


def unwrap(message: E2EMessage) -> E2EMessage:
    """The innermost message inside any envelope (bounded, in case of a malformed loop)."""
    for _ in range(5):
        for name in _WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def is_envelope_only(message: E2EMessage) -> bool:
    """True when the message carries nothing to show: only key material, metadata, or nothing."""
    present = {field.name for field, _ in message.ListFields()}
    return present <= _ENVELOPE_ONLY


def read_content(message: E2EMessage) -> Content:
    """Kind, text, mentions and quoted id of an (already unwrapped) message."""
    for name, kind in _KINDS:
        if not message.HasField(name):
            continue
        if name == "conversation":
            return Content(kind, _text(message.conversation))
        body = getattr(message, name)
        text_field = _TEXT_FIELD.get(name)
        text = _text(getattr(body, text_field)) if text_field else None
        mentions, quoted = _context(body)
        if name == "reactionMessage":
            # A reaction "quotes" the message it reacts to through its key.
            quoted = _text(body.key.ID)
        return Content(kind, text, mentions, quoted)
    return Content("other")


def _context(body: Any) -> tuple[tuple[str, ...], str | None]:
    """Mentions and quoted message id from a content's contextInfo, when it has one."""
    if "contextInfo" not in body.DESCRIPTOR.fields_by_name or not body.HasField("contextInfo"):
        return (), None
    context = body.contextInfo
    mentions = tuple(str(jid) for jid in context.mentionedJID if jid)
    return mentions, _text(context.stanzaID)


def _text(value: object) -> str | None:
    """A protobuf string field as the port wants it: None when empty."""
    return str(value) if value else None
