"""The PostgreSQL store's own promises: schema under an advisory lock with a version a process
refuses when newer, start-up refusals with exit code 2 (missing driver, a SQLite file another
process holds), ``/health`` and 503 during an outage with history kept for later, the cluster
metrics, and history writes that need no statement of their own."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from flowengine.errors import StoreRefused
from flowengine.server.keys import LIVENESS

pytest.importorskip("asyncpg", reason="asyncpg is not installed (the test extra has it)")
from flowengine.runtime.pgstore import SCHEMA_VERSION, PgStore

from support.api import execute, node, register, two_node_workflow
from support.postgres import TcpProxy, run_admin
from support.process import free_port, start_server, stop, wait_healthy

EXIT_TIMEOUT = 30  # a bound on a hang


async def test_schema_is_created_once_by_processes_starting_together(pg_url):
    stores = [PgStore(pg_url, pool_size=2) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        (rows,) = run_admin(pg_url, "SELECT version FROM flowengine_schema")
        assert [row["version"] for row in rows] == [SCHEMA_VERSION]
        (nodes,) = run_admin(pg_url, "SELECT node_id, epoch FROM nodes")
        assert len({row["node_id"] for row in nodes}) == 4
        assert len({row["epoch"] for row in nodes}) == 4  # every registration its own epoch
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    (nodes,) = run_admin(pg_url, "SELECT node_id FROM nodes")
    assert nodes == []  # a process that stops takes its row with it


async def test_a_newer_schema_is_refused(pg_url):
    store = PgStore(pg_url, pool_size=1)
    await store.open()
    await store.close()
    run_admin(pg_url, f"UPDATE flowengine_schema SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreRefused, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await PgStore(pg_url, pool_size=1).open()


def _exit_of(process) -> tuple[int, str]:
    out, _ = process.communicate(timeout=EXIT_TIMEOUT)
    return process.returncode, out.decode()


def test_without_asyncpg_start_up_exits_2_naming_the_extra(tmp_path):
    blocker = tmp_path / "blocked" / "asyncpg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('asyncpg is hidden for this test')\n")
    process = start_server(
        "postgresql://nobody@127.0.0.1:1/none", free_port(), PYTHONPATH=str(tmp_path / "blocked")
    )
    code, output = _exit_of(process)
    assert code == 2, output
    assert "flowengine-server[postgres]" in output
    assert "Traceback" not in output


def test_an_unreachable_database_exits_2():
    process = start_server(f"postgresql://nobody@127.0.0.1:{free_port()}/none", free_port())
    code, output = _exit_of(process)
    assert code == 2, output
    assert "cannot open the PostgreSQL database" in output and "Traceback" not in output


async def test_a_second_process_on_one_sqlite_file_exits_2_pointing_to_postgresql(tmp_path):
    db = str(tmp_path / "one.db")
    port = free_port()
    first = start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, f"http://127.0.0.1:{port}", first)
        second = start_server(db, free_port())
        code, output = _exit_of(second)
        assert code == 2, output
        assert "in use by another flowengine process" in output
        assert "postgresql://" in output and "Traceback" not in output
    finally:
        code, output = stop(first)
    assert code == 0, output
    # Once the first one is gone, the file is free again.
    again = start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, f"http://127.0.0.1:{port}", again)
    finally:
        stop(again)


@pytest.fixture
async def proxied(pg_url, pg_cluster):
    """The test database reached through a relay the test can cut."""
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    yield proxy, pg_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    await proxy.cut()


async def test_an_outage_says_degraded_answers_503_and_keeps_history_for_later(make_client, proxied):
    proxy, url = proxied
    client = await make_client(db=url, node_heartbeat=0.2, node_timeout=5.0)
    workflow_id = await register(client, two_node_workflow())
    slow_id = await register(client, {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=800)]})
    response = await client.post(f"/api/workflows/{slow_id}/execute?wait=false")
    assert response.status == 202
    running_id = (await response.json())["execution_id"]

    await proxy.cut()
    for _ in range(100):  # a few heartbeats
        health = await (await client.get("/health")).json()
        if health["status"] == "degraded":
            break
        await asyncio.sleep(0.05)
    assert health["status"] == "degraded" and health["store"] == "postgresql", health
    response = await client.get("/health")
    assert response.status == 200  # the process itself still serves
    response = await client.get("/api/executions")
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "error" in await response.json()
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    assert response.status == 503  # its record cannot be committed, so it is not acknowledged
    await asyncio.sleep(1.0)  # the running execution finishes meanwhile; its record waits

    await proxy.restore()
    for _ in range(200):
        health = await (await client.get("/health")).json()
        if health["status"] == "healthy":
            break
        await asyncio.sleep(0.05)
    assert health["status"] == "healthy", health
    response = await client.get(f"/api/executions/{running_id}")
    assert response.status == 200
    assert (await response.json())["status"] == "succeeded"
    await execute(client, workflow_id)


async def test_metrics_name_the_cluster(make_client, pg_url):
    client = await make_client(db=pg_url, node_heartbeat=0.2)
    await asyncio.sleep(0.5)
    text = await (await client.get("/metrics")).text()
    for name in (
        "flowengine_cluster_processes_alive 1",
        "flowengine_cluster_reaped_executions_total 0",
        "flowengine_cluster_listener_reconnects_total 0",
        "flowengine_db_oldest_transaction_seconds",
    ):
        assert name in text, name


async def test_answers_wait_for_the_group_commit_without_a_statement_of_their_own(make_client, pg_url):
    """Many concurrent synchronous executions: each answer is for a committed record, and the
    history took far fewer transactions than there were executions (they shared commits)."""
    client = await make_client(db=pg_url)
    workflow_id = await register(client, two_node_workflow())
    # Every writing transaction takes a transaction id: their count is what the writes cost.
    (before,) = run_admin(pg_url, "SELECT txid_current() AS xid")
    answers = await asyncio.gather(*(execute(client, workflow_id) for _ in range(200)))
    (after,) = run_admin(pg_url, "SELECT txid_current() AS xid")
    (rows,) = run_admin(pg_url, "SELECT id, status FROM executions")
    stored = {row["id"]: row["status"] for row in rows}
    assert all(stored.get(answer["execution_id"]) == "succeeded" for answer in answers)
    transactions = after[0]["xid"] - before[0]["xid"] - 1
    # Heartbeats write too: still far from one transaction per execution.
    assert transactions < len(answers) / 2, transactions


async def test_a_process_that_missed_a_notification_reads_the_workflow_when_asked(make_client, pg_url):
    writer = await make_client(db=pg_url, node_heartbeat=60.0, node_timeout=0.5)
    reader = await make_client(db=pg_url, node_heartbeat=60.0, node_timeout=120.0)
    # The reader hears no notification and checks for missed ones only every 60 s.
    await reader.app[LIVENESS].store.stop_listening()
    workflow_id = await register(writer, two_node_workflow())
    assert (await reader.get("/api/workflows")).status == 200
    result = await execute(reader, workflow_id)
    assert result["status"] == "succeeded"


async def test_a_lost_notification_connection_is_reopened_and_no_change_is_missed(make_client, pg_url):
    writer = await make_client(db=pg_url, node_heartbeat=0.2)
    reader = await make_client(db=pg_url, node_heartbeat=0.2)
    document = {"id": "followed", "name": "followed", "nodes": [node("a", "transform.set", greeting="first")]}
    await register(writer, document)
    assert "first" in str((await execute(reader, "followed"))["outputs"])
    # The database drops both processes' LISTEN connections (a restart of a pooler, say).
    run_admin(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    document["nodes"][0]["config"]["greeting"]["value"] = "second"
    response = await writer.put("/api/workflows/followed", json=document)
    assert response.status == 200, await response.text()
    assert "second" in str((await execute(reader, "followed"))["outputs"])
    for _ in range(100):
        metrics = await (await reader.get("/metrics")).text()
        if "flowengine_cluster_listener_reconnects_total 1" in metrics:
            break
        await asyncio.sleep(0.05)
    assert "flowengine_cluster_listener_reconnects_total 1" in metrics
    assert (await (await reader.get("/health")).json())["status"] == "healthy"
