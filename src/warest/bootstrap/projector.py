"""The projector's composition root (``warest projector``): the read-model runners and the
webhook outbox, nothing else (no HTTP, no engine, no session)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from warest.bootstrap.foundation import Database, build_runners, build_store, settle_garbage_collector
from warest.config import Settings
from warest.infra.db.connect import AdvisoryLock
from warest.infra.db.lease import Lease
from warest.infra.projector import projector_channel, projector_lock_key
from warest.infra.readmodels import LocalReadModels
from warest.supervision import exit_with_supervisor

log = logging.getLogger("warest")


async def run_projector(settings: Settings, database: Database, *, migrate_first: bool = True) -> None:
    """Until SIGTERM or SIGINT, takes the projector lease of the schema and, while it holds
    it, keeps every read model of a server (outbox included) and announces each batch on the
    schema's channel.

    ``migrate_first``: false for a server worker's child, started by the worker while it
    holds the startup lock, after migrating."""
    if settings.supervisor_pid and settings.supervisor_pid != os.getpid():
        exit_with_supervisor(settings.supervisor_pid)
    schema = settings.database_schema
    database_url = await asyncio.to_thread(database.start)
    if migrate_first:
        async with database.startup():
            await asyncio.to_thread(database.migrate)
    store = await asyncio.to_thread(build_store, settings, database_url)
    current: list[LocalReadModels] = []

    async def start() -> None:
        runners = build_runners(
            store, settings, database_url, with_outbox=True, announce=projector_channel(schema)
        )
        read_models = LocalReadModels(runners, store.max_position)
        current.append(read_models)
        await asyncio.to_thread(read_models.start)
        settle_garbage_collector()

    async def stop() -> None:
        while current:
            await asyncio.to_thread(current.pop().stop)

    lease = Lease(
        AdvisoryLock(database_url, projector_lock_key(schema)), start, stop, name="projector", retry_s=1.0
    )
    work = asyncio.create_task(lease.run(), name="projector-lease")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, work.cancel)
    try:
        await work
    except asyncio.CancelledError:
        log.info("projector stopped")
    finally:
        store.close()
