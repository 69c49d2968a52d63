"""Every aggregate and every event class of the domain, in one place.

The mapper resolves former topics from it, the history names its public types from it, and
the version checks (``tests/unit/test_event_versions.py``) hold each class to its stored
fixtures and its schema snapshot.
"""

from __future__ import annotations

from warest.domain.chats import Chat
from warest.domain.claims import Claim
from warest.domain.idempotency import IdempotencyRecord
from warest.domain.messages import Message
from warest.domain.model import Aggregate, DomainEvent
from warest.domain.sessions import Session
from warest.domain.users import User
from warest.domain.webhooks import WebhookEndpoint

AGGREGATES: tuple[type[Aggregate], ...] = (
    User, Session, Message, Chat, WebhookEndpoint, Claim, IdempotencyRecord
)  # fmt: skip


def event_classes(aggregate: type) -> list[type[DomainEvent]]:
    """The event classes declared in ``aggregate``'s body, in declaration order."""
    return [
        value
        for value in vars(aggregate).values()
        if isinstance(value, type) and issubclass(value, DomainEvent)
    ]


EVENT_CLASSES: tuple[type[DomainEvent], ...] = tuple(
    cls for aggregate in AGGREGATES for cls in event_classes(aggregate)
)
