"""PostgreSQL: the embedded server, migrations and connection helpers."""
