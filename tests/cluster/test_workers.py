"""``flowengine serve --workers 2`` as a user runs it: one real supervisor process and its two
workers on one port and one PostgreSQL database. Which worker answered is read from
``/health`` (its ``node`` names the process); a connection stays on one worker, so a request
sent over the same keep-alive connection ran there too. Short heartbeat settings
(support.cluster); every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

import aiohttp
import pytest

from support.api import node
from support.cluster import WAIT, store_env
from support.exposition import parse_exposition
from support.process import free_port, start_server, stop, wait_healthy

REQUESTS = 40  # fresh connections: the kernel spreads them over both workers (all on one: 2^-39)


def _pid(node_id: str) -> int:
    return int(node_id.rsplit(":", 2)[1])  # host:pid:suffix


class Server:
    """``python -m flowengine --workers N`` and a way to reach one of its workers."""

    def __init__(self, db: str, workers: int = 2) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = start_server(db, self.port, **store_env(db, FLOWENGINE_WORKERS=str(workers)))

    async def node(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"{self.base}/health") as response:
            assert response.status == 200
            return (await response.json())["node"]

    async def nodes(self, count: int = REQUESTS) -> Counter[str]:
        """Which process answered each of ``count`` health checks on fresh connections."""
        seen: Counter[str] = Counter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            while sum(seen.values()) < count:
                try:
                    seen[await self.node(session)] += 1
                except aiohttp.ClientConnectionError:  # accepted by a worker that was just killed
                    await asyncio.sleep(0.05)
        return seen

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples with these labels, scraped on a fresh connection."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            async with session.get(f"{self.base}/metrics") as response:
                assert response.status == 200, await response.text()
                families = parse_exposition(await response.text())
        family = families[name]
        wanted = set(labels.items())
        return sum(value for (_sample, pairs), value in family.samples.items() if wanted <= set(pairs))


def _started(db: str) -> Server:
    started = Server(db)
    asyncio.run(_healthy(started))
    return started


async def _healthy(server: Server) -> None:
    """Until both workers answer: the first one to listen answers alone meanwhile."""
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, server.base, server.process)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while len(await server.nodes(10)) < 2 and loop.time() < deadline:
        assert server.process.poll() is None


def _stopped(server: Server, pids: set[int]) -> str:
    """SIGTERM to the supervisor: it exits 0 once every worker has stopped gracefully."""
    code, output = stop(server.process, signal.SIGTERM)
    assert code == 0, output
    assert "[killed:" not in output, output
    assert output.count("stopped") >= 3, output  # both workers, then the supervisor
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    return output


@pytest.fixture(scope="module")
def shared(pg_cluster):
    """One server for the tests that leave it as they found it."""
    started = _started(pg_cluster.create_database())
    yield started
    if started.process.poll() is None:  # the last test kills it
        code, output = stop(started.process)
        assert code == 0 and "[killed:" not in output, output
    else:
        started.process.communicate()


async def test_two_workers_serve_one_port_and_metrics_count_both(shared):
    before = await shared.metric("flowengine_http_requests_total", route="/health")
    seen = await shared.nodes()
    assert len(seen) == 2, seen
    pids = {_pid(node_id) for node_id in seen}
    assert shared.process.pid not in pids  # the supervisor itself serves nothing
    # Every health check of both workers is in the one exposition, whichever worker serves it.
    after = await shared.metric("flowengine_http_requests_total", route="/health")
    assert after - before == REQUESTS
    assert await shared.metric("flowengine_workers") == 2
    # A gauge that is a fact about each process, not an amount, is not added up.
    assert await shared.metric("python_info") == 1


@pytest.fixture
async def server(pg_url):
    started = Server(pg_url)
    try:
        await _healthy(started)
        yield started
    finally:
        if started.process.poll() is None:
            stop(started.process)


async def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(server):
    seen = await server.nodes()
    assert len(seen) == 2, seen
    victim_node = next(iter(seen))
    victim = _pid(victim_node)
    workflow = await _register(server)
    await _execute_on(server, victim_node, workflow)
    # This scrape is the last the supervisor has of the victim's counts.
    assert await server.metric("flowengine_executions_total", workflow=workflow) == 1
    counted = await server.metric("flowengine_http_requests_total")
    os.kill(victim, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while loop.time() < deadline:
        pids = {_pid(node_id) for node_id in await server.nodes(10)}
        if len(pids) == 2 and victim not in pids:
            break
    assert len(pids) == 2 and victim not in pids, pids
    # What the dead worker counted still counts: no counter goes back.
    assert await server.metric("flowengine_http_requests_total") >= counted
    assert await server.metric("flowengine_executions_total", workflow=workflow) == 1
    assert await server.metric("flowengine_worker_restarts_total") == 1
    # A deleted workflow's series leave the dead worker's counts too.
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{server.base}/api/workflows/{workflow}") as response:
            assert response.status == 200
    while await server.metric("flowengine_executions_total", workflow=workflow) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert await server.metric("flowengine_executions_total", workflow=workflow) == 0
    output = _stopped(server, pids)
    assert f"(pid {victim}) was killed by SIGKILL" in output, output


async def _register(server: Server) -> str:
    document = {"name": "w", "nodes": [node("a", "transform.set", x=1)]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base}/api/workflows", json=document) as response:
            assert response.status == 201
            return (await response.json())["id"]


async def _execute_on(server: Server, node_id: str, workflow: str) -> str:
    """Execute ``workflow`` on the worker ``node_id`` (a connection that reached it); its id."""
    while True:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as caller:
            if await server.node(caller) == node_id:
                async with caller.post(f"{server.base}/api/workflows/{workflow}/execute") as response:
                    assert response.status == 200
                    return (await response.json())["execution_id"]


async def test_a_listener_sees_the_executions_of_its_own_worker(shared):
    """A listener and an execute over one keep-alive connection are on the same worker."""
    workflow = await _register(shared)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        listener_node = await shared.node(session)
        async with session.ws_connect(f"{shared.base}/api/events?workflow_id={workflow}") as ws:
            execution_id = await _execute_on(shared, listener_node, workflow)  # over a connection of its own
            assert await _completed(ws, {execution_id}) == {execution_id}


async def test_a_listener_sees_the_executions_of_the_other_worker(shared):
    workflow = await _register(shared)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        listener_node = await shared.node(session)
        async with session.ws_connect(f"{shared.base}/api/events?workflow_id={workflow}") as ws:
            started: set[str] = set()
            seen: set[str] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3  # the other worker learns of the listener within a heartbeat or so
            while not seen and loop.time() < deadline:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as caller:
                    if await shared.node(caller) == listener_node:
                        continue
                    async with caller.post(f"{shared.base}/api/workflows/{workflow}/execute") as response:
                        started.add((await response.json())["execution_id"])
                seen |= await _completed(ws, started, timeout=0.5)
    assert seen, "no execution run by the other worker reached the listener"


async def _completed(ws: aiohttp.ClientWebSocketResponse, wanted: set[str], timeout: float = WAIT) -> set[str]:
    """The ids of ``wanted`` whose WorkflowCompleted arrives within ``timeout`` seconds."""
    seen: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while seen != wanted and loop.time() < deadline:
        try:
            message = await ws.receive(timeout=max(0.01, deadline - loop.time()))
        except TimeoutError:
            break
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        event = json.loads(message.data)
        if event["type"] == "WorkflowCompleted" and event["execution_id"] in wanted:
            seen.add(event["execution_id"])
    return seen


def test_sqlite_refuses_more_than_one_worker(tmp_path):
    """``python -m flowengine`` reads FLOWENGINE_WORKERS (the flag is used below)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowengine"],
        env={
            **os.environ, "FLOWENGINE_DB": str(tmp_path / "one.db"),
            "BIND_ADDRESS": f"127.0.0.1:{free_port()}", "FLOWENGINE_WORKERS": "2",
        },
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    code, output = _wait(process)
    assert code == 2, output
    assert "--workers 2 (FLOWENGINE_WORKERS) needs a PostgreSQL database" in output, output
    assert "postgresql://" in output, output
    assert not (tmp_path / "one.db").exists()  # refused before anything was opened


def _wait(process: subprocess.Popen) -> tuple[int, str]:
    _out, err = process.communicate(timeout=WAIT)
    return process.returncode, err.decode()


async def test_workers_that_cannot_start_stop_the_server_with_their_status(pg_url):
    """A configuration every worker refuses (a plugin that does not exist) ends the start
    with status 2, as one process would, instead of restarting workers forever."""
    port = free_port()
    process = start_server(pg_url, port, **store_env(pg_url, FLOWENGINE_WORKERS="2", FLOWENGINE_PLUGINS="no_such_plugin_module"))
    out, _err = process.communicate(timeout=WAIT)
    output = out.decode()
    assert process.returncode == 2, output
    assert "no_such_plugin_module" in output
    assert "while starting; the server stopped" in output, output


def _gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped counts: it serves nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_workers_stop_when_the_supervisor_is_killed(shared):
    """Run last on the shared server: kill -9 of the supervisor leaves no worker serving."""
    pids = {_pid(node_id) for node_id in await shared.nodes(10)}
    shared.process.kill()
    shared.process.wait(WAIT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not all(_gone(pid) for pid in pids) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert all(_gone(pid) for pid in pids), pids
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await shared.node(session)


def test_an_address_in_use_stops_the_supervisor_before_any_worker_starts():
    """The supervisor binds the address itself first: the usual message and exit code 2 (it
    never opens the database, which here does not even exist)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "flowengine", "--workers", "2"],
            env={**os.environ, "FLOWENGINE_DB": "postgresql://nobody@127.0.0.1:9/none", "BIND_ADDRESS": f"127.0.0.1:{port}"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        code, output = _wait(process)
    assert code == 2, output
    assert f"cannot listen on 127.0.0.1:{port}" in output, output
    assert "worker" not in output, output
