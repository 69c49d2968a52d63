"""Read-model projections of the event log: one module per read model."""

from projections.registry import RegistryProjection

ALL = (RegistryProjection,)

__all__ = ["ALL", "RegistryProjection"]
