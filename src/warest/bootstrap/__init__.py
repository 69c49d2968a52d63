"""The composition roots: nothing else constructs infrastructure.

Three roles, each built by its own root from ``Settings``:

- ``server.Container``: a ``warest serve`` worker (and an in-process test app): engines,
  session runtimes and auto-start, the webhook dispatcher, the HTTP services;
- ``projector.run_projector``: ``warest projector``, the read-model runners only;
- ``admin.AdminContainer``: the administrative commands of the command line (users,
  projections, events export, migrate), which never start an engine or a session.

``foundation`` holds what they share: the database (URL or embedded server), the start-up
lock and migrations, the event store, the projection runners, the pool, ``UserService``.
"""

from warest.app.services import Services
from warest.bootstrap.admin import AdminContainer
from warest.bootstrap.foundation import (
    Database,
    build_runners,
    build_store,
    server_read_model_names,
    settle_garbage_collector,
    startup_lock_key,
)
from warest.bootstrap.projector import run_projector
from warest.bootstrap.server import Container, StartInterrupted

__all__ = [
    "AdminContainer",
    "Container",
    "Database",
    "Services",
    "StartInterrupted",
    "build_runners",
    "build_store",
    "run_projector",
    "server_read_model_names",
    "settle_garbage_collector",
    "startup_lock_key",
]
