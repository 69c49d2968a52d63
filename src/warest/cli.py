"""The ``warest`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from warest.app.users import UserService
from warest.config import ConfigError, Settings

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        click.echo(f"configuration error: {error}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="warest")
def main() -> None:
    """warest: event-sourced WhatsApp REST gateway."""


@main.command()
@click.option("--host", default=None, help="Bind address (default HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default PORT or 7308).")
def serve(host: str | None, port: int | None) -> None:
    """Runs the gateway (embedded PostgreSQL when WAREST_DATABASE_URL is unset)."""
    settings = _settings()
    from warest.infra.db.embedded import EmbeddedPostgres  # noqa: PLC0415
    from warest.logs import setup_logging  # noqa: PLC0415
    from warest.serving import (  # noqa: PLC0415
        CannotServe,
        announce_when_serving,
        check_database,
        check_port_free,
        run_granian,
        run_uvicorn,
    )

    setup_logging(settings.log_level)
    host = host or settings.host
    port = port or settings.port
    try:
        check_port_free(host, port)
        if not settings.embedded_database:
            check_database(settings.database_url)
    except CannotServe as error:
        click.echo(f"warest serve: {error}", err=True)
        sys.exit(1)
    embedded: EmbeddedPostgres | None = None
    if settings.embedded_database:
        # A watchdog stops it should this process be killed before it can.
        embedded = EmbeddedPostgres(settings.data_path, watch=True)
        # Workers inherit the URL: one embedded server for all of them.
        os.environ["WAREST_DATABASE_URL"] = embedded.start()
        os.environ["WAREST_DATABASE_EMBEDDED"] = "true"
    # Server workers exit by themselves if this process dies without stopping them (kill -9).
    os.environ["WAREST_SUPERVISOR_PID"] = str(os.getpid())
    announced = announce_when_serving(host, port, click.echo)
    try:
        (run_granian if settings.server == "granian" else run_uvicorn)(settings, host, port)
    finally:
        announced.set()
        if embedded is not None:
            embedded.stop()


def _run(factory: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    settings = _settings()
    return asyncio.run(factory(settings))


async def _with_users(settings: Settings, action: Callable[[UserService], Coroutine[Any, Any, T]]) -> T:
    """Runs ``action(users)`` with the admin container's ``UserService``: no engine, no
    session and no projector is started, so this is safe beside a running server."""
    from warest.bootstrap.admin import AdminContainer  # noqa: PLC0415

    async with AdminContainer(settings) as admin:
        return await action(await admin.users())


@main.command()
@click.option("--no-migrate", is_flag=True, hidden=True, help="Internal: a server worker migrated already.")
def projector(no_migrate: bool) -> None:
    """Keeps the read models (servers start one each; one at a time works, the others stand by)."""
    settings = _settings()
    from warest.bootstrap.foundation import Database  # noqa: PLC0415
    from warest.bootstrap.projector import run_projector  # noqa: PLC0415
    from warest.logs import setup_logging  # noqa: PLC0415

    setup_logging(settings.log_level)
    database = Database(settings)
    try:
        asyncio.run(run_projector(settings, database, migrate_first=not no_migrate))
    except KeyboardInterrupt:
        pass
    finally:
        database.stop()


@main.command()
def migrate() -> None:
    """Applies pending read-model migrations."""
    from warest.bootstrap.admin import AdminContainer  # noqa: PLC0415

    with AdminContainer(_settings()) as admin:
        applied = admin.migrate()
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{len(applied)} migration(s) applied")


@main.group()
def users() -> None:
    """Manage users (tenants) and their API keys."""


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--registry", default=None, help="Registry code (generated when omitted).")
@click.option("--password", default=None, help="Password for /api/auth/login (prompted with -p).")
@click.option("-p", "prompt_password", is_flag=True, help="Prompt for a password.")
def users_create(
    username: str, admin: bool, registry: str | None, password: str | None, prompt_password: bool
) -> None:
    """Creates a user and prints its API key (shown once)."""
    from warest.domain.values import Role  # noqa: PLC0415

    if prompt_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def action(users: Any) -> tuple[Any, str | None]:
        result: tuple[Any, str | None] = await users.create(
            username, password=password, role=Role.ADMIN if admin else Role.USER, registry=registry
        )
        return result

    record, key = _run(lambda s: _with_users(s, action))
    click.echo(f"created {record.username} (registry {record.registry}, role {record.role})")
    click.echo(f"API key (shown once): {key}")


@users.command("list")
def users_list() -> None:
    """Lists users."""

    async def action(users: Any) -> list[Any]:
        result: list[Any] = await users.all()
        return result

    for record in _run(lambda s: _with_users(s, action)):
        state = "disabled" if record.disabled else "active"
        click.echo(f"{record.username}\t{record.registry}\t{record.role}\t{state}")


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disables a user: its API key and docs sessions stop working."""

    async def action(users: Any) -> Any:
        return await users.set_disabled(username, True)

    _run(lambda s: _with_users(s, action))
    click.echo(f"disabled {username}")


@users.command("rotate-key")
@click.argument("username")
def users_rotate_key(username: str) -> None:
    """Issues a new API key for a user; the old one stops working."""

    async def action(users: Any) -> str:
        key: str = await users.rotate_key(username)
        return key

    key = _run(lambda s: _with_users(s, action))
    click.echo(f"API key (shown once): {key}")


@main.group()
def config() -> None:
    """Configuration."""


@config.command("check")
def config_check() -> None:
    """Validates the configuration and prints the effective values (secrets masked)."""
    settings = _settings()
    rows = settings.described()
    width = max(len(name) for name, _, _ in rows)
    for name, value, _default in rows:
        click.echo(f"{name.ljust(width)}  {value}")
    click.echo("configuration OK")


@main.group()
def projections() -> None:
    """Read models."""


@projections.command("rebuild")
@click.argument("name", required=False)
def projections_rebuild(name: str | None) -> None:
    """Rebuilds read models (all, or NAME) from the event log.

    Each is built in shadow tables and swapped in when complete: a server may keep running
    and answering meanwhile."""
    from tqdm import tqdm  # noqa: PLC0415

    from warest.bootstrap.admin import AdminContainer  # noqa: PLC0415
    from warest.infra.projection_runner import RebuildRunning  # noqa: PLC0415

    with AdminContainer(_settings()) as admin:
        store = admin.event_store()
        runners = admin.runners()
        known = [r.name for r in runners]
        if name is not None and name not in known:
            raise click.BadParameter(f"unknown projection '{name}' (known: {', '.join(known)})")
        for runner in runners:
            if name is not None and runner.name != name:
                continue
            total = store.max_position()
            with tqdm(total=total, desc=runner.name, unit="ev", file=sys.stderr) as bar:

                def progress(position: int, _upper: int, bar: Any = bar) -> None:
                    bar.update(position - bar.n)

                try:
                    count = runner.rebuild(progress)
                except RebuildRunning as error:
                    raise click.ClickException(str(error)) from error
                bar.update(total - bar.n)
            runner.stop()
            click.echo(f"rebuilt {runner.name}: {count} events")


@projections.command("retry-parked")
@click.argument("name", required=False)
def projections_retry_parked(name: str | None) -> None:
    """Applies again the events read models parked (all, or NAME's), after a fix."""
    from warest.bootstrap.admin import AdminContainer  # noqa: PLC0415

    with AdminContainer(_settings()) as admin:
        runners = admin.runners(with_outbox=True)
        known = [r.name for r in runners]
        if name is not None and name not in known:
            raise click.BadParameter(f"unknown projection '{name}' (known: {', '.join(known)})")
        for runner in runners:
            if name is None or runner.name == name:
                retried = runner.retry_parked()
                click.echo(f"{runner.name}: {retried.applied} applied, {retried.failed} still parked")
            runner.stop()


# -- events -------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """The event history (auditing and analytics)."""


def _instant(value: str | None, option: str) -> Any:
    """An ISO-8601 date or date-time option; UTC when it has no offset."""
    from datetime import UTC, datetime  # noqa: PLC0415

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 date or date-time: {value!r}", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def _export_history(settings: Settings, url: str, mapper: Any, sink: Any, **filters: Any) -> int:
    """Writes every matching event up to the history's horizon now; returns the count."""
    import msgspec  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from warest.app.history import EventHistory  # noqa: PLC0415
    from warest.bootstrap.foundation import create_pool  # noqa: PLC0415
    from warest.infra.db.history import PgEventHistory  # noqa: PLC0415

    pool = await create_pool(settings, url, max_size=2)
    try:
        history = EventHistory(PgEventHistory(pool, mapper))
        upper = await history.horizon()
        after: int = filters["after"]
        total = max(upper - after, 0)
        count = 0
        with tqdm(total=total, desc="events", unit="pos", file=sys.stderr) as bar:
            async for item in history.export(upper=upper, **filters):
                sink.write(msgspec.json.encode(item) + b"\n")
                bar.update(item.position - after - bar.n)
                count += 1
            bar.update(total - bar.n)
        return count
    finally:
        await pool.close()


@events.command("export")
@click.option("--registry", default=None, help="Only this registry (default: all; lines then name it).")
@click.option("--session", default=None, help="Only this session id.")
@click.option(
    "--type", "types", multiple=True, help="Event type, e.g. Message.Received or Session.* (repeatable)."
)
@click.option("--after", type=click.IntRange(min=0), default=0, help="Start after this log position.")
@click.option("--since", default=None, help="Events at or after this ISO-8601 time.")
@click.option("--until", default=None, help="Events before this ISO-8601 time.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="File (default: stdout).")
def events_export(
    registry: str | None,
    session: str | None,
    types: tuple[str, ...],
    after: int,
    since: str | None,
    until: str | None,
    output: str | None,
) -> None:
    """Writes the event history as NDJSON: one event per line, shaped as the API shows it."""
    from warest.app.history import build_query  # noqa: PLC0415
    from warest.bootstrap.admin import AdminContainer  # noqa: PLC0415
    from warest.domain.errors import InvalidValue  # noqa: PLC0415

    filters: dict[str, Any] = {
        "registry": registry,
        "after": after,
        "session": session,
        "types": types,
        "since": _instant(since, "--since"),
        "until": _instant(until, "--until"),
    }
    try:
        build_query(registry, session, types, filters["since"], filters["until"])
    except InvalidValue as error:
        raise click.BadParameter(error.reason, param_hint=f"--{error.field}") from None
    settings = _settings()
    with AdminContainer(settings) as admin:
        store = admin.event_store()
        # Attribute every stream committed so far (safe beside a running server).
        (streams,) = admin.runners(only=("streams",))
        streams.catch_up()
        streams.stop()
        with open(output, "wb") if output else contextlib.nullcontext(sys.stdout.buffer) as sink:
            count = asyncio.run(_export_history(settings, admin.database_url, store.mapper, sink, **filters))
            sink.flush()
    click.echo(f"exported {count} events", err=True)


if __name__ == "__main__":
    main()
