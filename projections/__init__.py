"""Read-model projections of the event log: one module per read model."""

from projections.messaging import MessagingProjection
from projections.registry import RegistryProjection

ALL = (RegistryProjection, MessagingProjection)

__all__ = ["ALL", "MessagingProjection", "RegistryProjection"]
