"""The ``processes`` fixture: servers on one fresh PostgreSQL database (support.clusterprocs)."""

from __future__ import annotations

import pytest

from support.clusterprocs import Processes


@pytest.fixture
async def processes(request, pg_url):
    """Servers on one fresh database, each with the module's ``PROCESS_ENVIRONMENT`` (if any);
    every one must stop on SIGTERM without a traceback."""
    started = Processes(pg_url, **getattr(request.module, "PROCESS_ENVIRONMENT", {}))
    yield started
    for output in started.stop_all():
        assert "[killed:" not in output, output  # every process stops on SIGTERM
        assert "Traceback" not in output, output
