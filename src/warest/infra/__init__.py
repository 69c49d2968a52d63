"""Infrastructure: event store, databases, engines, HTTP senders."""
