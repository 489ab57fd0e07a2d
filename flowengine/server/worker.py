"""The worker side of ``flowengine serve --workers N``: a server process started by the
supervisor (supervisor.py), which tells it, in the environment variable ``WORKER_ENV``, its
slot, the descriptor of its end of the link (workerlink.py) and the port every worker binds
(SO_REUSEPORT).

Over the link a worker says when it listens, hands its metrics snapshot to the supervisor on
request, and asks the supervisor for the whole server's exposition when ``/metrics`` is
scraped. The link's end means the supervisor is gone (killed, say): the worker then stops the
way SIGTERM stops it, rather than serve on unsupervised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import Unavailable
from .keys import TELEMETRY
from .workerlink import Link, LinkClosed

__all__ = ["WORKER_ENV", "WorkerSpec", "WorkerLink", "worker_spec"]

log = logging.getLogger("flowengine.workers")

# Set by the supervisor for its workers only ("<slot>:<link descriptor>:<port>"); not a setting.
WORKER_ENV = "_FLOWENGINE_WORKER"
# How long a scrape waits for the supervisor's merged exposition (it waits at most
# supervisor.SNAPSHOT_TIMEOUT for each worker, all at once).
SCRAPE_TIMEOUT = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    slot: int
    link_fd: int
    port: int


def worker_spec(environ: Mapping[str, str]) -> WorkerSpec | None:
    """What the supervisor told this process, or None when no supervisor started it.
    ValueError if the variable is malformed (it was not set by a supervisor)."""
    text = environ.get(WORKER_ENV)
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{WORKER_ENV}={text!r} is set by the supervisor of --workers only; unset it")
    slot, link_fd, port = map(int, parts)
    return WorkerSpec(slot, link_fd, port)


class WorkerLink:
    """This worker's end of the link, opened and closed with the application
    (``app.cleanup_ctx``)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._link: Link | None = None
        self._stop: Callable[[], None] | None = None
        self._supervisor_gone = False

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        telemetry = app[TELEMETRY]

        async def snapshot(_message: dict[str, Any]) -> Any:
            return telemetry.snapshot()

        sock = socket.socket(fileno=self.spec.link_fd)
        sock.set_inheritable(False)  # the programs a worker starts must not hold the link open
        link = self._link = Link(sock, {"snapshot": snapshot}, on_close=self._lost)
        await link.start()
        telemetry.scrape = self.scrape
        telemetry.on_forget = self._forget
        try:
            yield
        finally:
            telemetry.scrape = telemetry.on_forget = None
            self._supervisor_gone = True  # stopping anyway: closing our end is no news
            await link.close()

    def stop_on(self, stop: Callable[[], None]) -> None:
        """run_server's hook: how to stop this server when the supervisor goes away."""
        self._stop = stop
        if self._supervisor_gone:
            stop()

    def listening(self) -> None:
        if self._link is not None:
            with contextlib.suppress(LinkClosed):
                self._link.notify("ready", pid=os.getpid())

    async def scrape(self) -> str:
        """The whole server's exposition, merged by the supervisor."""
        if self._link is None:
            raise Unavailable("the metrics of the other workers cannot be read: not linked to the supervisor")
        try:
            return str(await self._link.request("scrape", SCRAPE_TIMEOUT))
        except (LinkClosed, TimeoutError, RuntimeError) as exc:
            raise Unavailable(f"the supervisor did not answer for the other workers' metrics ({exc or type(exc).__name__})") from None

    def _forget(self, label: str, value: str) -> None:
        """A deleted workflow: the supervisor drops its series from dead workers' counts too."""
        if self._link is not None:
            with contextlib.suppress(LinkClosed):
                self._link.notify("forget", label=label, value=value)

    def _lost(self) -> None:
        if self._supervisor_gone:
            return
        self._supervisor_gone = True
        if self._stop is not None:
            log.warning("the supervisor is gone: stopping worker %d", self.spec.slot)
            self._stop()
