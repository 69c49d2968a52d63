"""The domain model: aggregates, events and value objects. Free of infrastructure."""
