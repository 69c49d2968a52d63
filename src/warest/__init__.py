"""warest: a self-hosted, multi-tenant WhatsApp REST gateway, event-sourced on PostgreSQL."""

__version__ = "0.1.0"
