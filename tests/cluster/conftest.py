"""The ``processes`` fixture: servers on one fresh PostgreSQL database (support.clusterprocs)."""

from __future__ import annotations

import pytest

from support.clusterprocs import Processes


@pytest.fixture
async def processes(pg_url):
    started = Processes(pg_url)
    yield started
    for output in started.stop_all():
        assert "[killed:" not in output, output  # every process stops on SIGTERM
        assert "Traceback" not in output, output
