"""Read-model projections of the event log: one module per read model."""

from projections.chats import ChatsProjection
from projections.contacts import ContactsProjection
from projections.messages import MessagesProjection
from projections.messaging import MessagingProjection
from projections.registry import RegistryProjection
from projections.streams import StreamsProjection

ALL = (
    RegistryProjection,
    MessagingProjection,
    StreamsProjection,
    MessagesProjection,
    ChatsProjection,
    ContactsProjection,
)

__all__ = [
    "ALL",
    "ChatsProjection",
    "ContactsProjection",
    "MessagesProjection",
    "MessagingProjection",
    "RegistryProjection",
    "StreamsProjection",
]
