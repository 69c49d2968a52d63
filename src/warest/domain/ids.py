"""Deterministic aggregate ids: uuid5 of natural keys.

A command that would create an aggregate whose natural key already exists collides on
version 1 in the event store; that is how uniqueness and idempotent ingestion work.
"""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("4b0a9f62-43a7-5d7c-9d2e-7a5f3c1e8b10")


def _id(kind: str, *parts: str) -> UUID:
    return uuid5(NAMESPACE, "\x1f".join((kind, *parts)))


def seeded_admin_id() -> UUID:
    return _id("seed-admin")


def username_claim_id(username: str) -> UUID:
    return _id("claim", "username", username.lower())


def registry_claim_id(registry: str) -> UUID:
    return _id("claim", "registry", registry.upper())


def session_id(registry: str, session_name: str) -> UUID:
    """A session is identified within its owner's registry: no global id namespace."""
    return _id("session", registry, session_name)


def _scope(registry: str, session_name: str, incarnation: int) -> tuple[str, ...]:
    """The parts naming one incarnation of a session. A session deleted and created again
    is a new incarnation (``Session.incarnation``): its chats, messages, webhook endpoints
    and idempotency records are new aggregates, nothing is inherited. Incarnations 0 (not
    known: recorded before incarnations existed) and 1 give the ids used before, so nothing
    already stored moves."""
    if incarnation <= 1:
        return (registry, session_name)
    return (registry, session_name, f"#{incarnation}")


def message_id(
    registry: str, session_name: str, chat: str, from_me: bool, wa_message_id: str, incarnation: int = 1
) -> UUID:
    """A WhatsApp message of a session, by WhatsApp's own key (chat, from me, id): two
    messages with one id in two chats are two messages; redeliveries and receipts map to
    the same id.

    ``wa_message_id`` is the id the message was received with, or for an outbound message
    (``from_me``) the id it was queued (and is sent) with."""
    scope = _scope(registry, session_name, incarnation)
    return _id("message-key", *scope, chat, "1" if from_me else "0", wa_message_id)


def legacy_message_id(registry: str, session_name: str, wa_message_id: str) -> UUID:
    """The id of a message recorded before messages were keyed by (chat, from me, id): only
    to find such messages, never to create one."""
    return _id("message", registry, session_name, wa_message_id)


def wa_id_claim_id(registry: str, session_name: str, wa_message_id: str, incarnation: int = 1) -> UUID:
    """The claim of a WhatsApp id that an engine chose for an outbound message (one queued
    under another id): it names the message, and is stored with the message's ``Sent``."""
    return _id("claim", "wa-id", *_scope(registry, session_name, incarnation), wa_message_id)


def chat_id(registry: str, session_name: str, chat_jid: str, incarnation: int = 1) -> UUID:
    return _id("chat", *_scope(registry, session_name, incarnation), chat_jid)


def idempotency_id(registry: str, session_name: str, key: str, incarnation: int = 1) -> UUID:
    return _id("idempotency", *_scope(registry, session_name, incarnation), key)


def webhook_endpoint_id(registry: str, session_name: str, name: str, incarnation: int = 1) -> UUID:
    return _id("webhook", *_scope(registry, session_name, incarnation), name)


DEFAULT_WEBHOOK_ENDPOINT = _id("webhook-default")
"""The endpoint of ``WEBHOOK_DEFAULT_URL`` (configuration, not an aggregate)."""
