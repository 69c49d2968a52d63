"""Child processes that must not outlive their parent."""

from __future__ import annotations

import logging
import os
import threading
import time


def exit_with_supervisor(supervisor_pid: int, interval_s: float = 0.5) -> None:
    """A process whose supervisor died (SIGKILL leaves no time to stop children) would go
    on next to a restarted server: a server worker would keep serving stale sessions, a
    projector would hold the projector lease. It exits instead (status 70)."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != supervisor_pid:
                logging.getLogger("warest").error("supervisor %s is gone; exiting", supervisor_pid)
                os._exit(70)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
