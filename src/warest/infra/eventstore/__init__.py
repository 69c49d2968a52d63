"""The event store: an eventsourcing application on PostgreSQL with a typed msgspec mapper."""
