"""Application services: command handlers, queries and the ports they need."""
