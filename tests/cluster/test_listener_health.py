"""The LISTEN connection of a process, cut by the database (pg_terminate_backend): the
heartbeat's self-ping finds it, the process reconnects, subscribes its channels again,
re-announces its listeners and reads what it missed, and events and replays between the
processes work again. Real processes on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp

from support.clusterprocs import LISTENER_HEARTBEAT, Processes, chain, metric, post, receive_frames, wait_for_metric
from support.postgres import run_admin
from support.process import free_port

RECONNECTS = "flowengine_cluster_listener_reconnects_total"


# Short heartbeats: a lost LISTEN connection is found, and listeners are announced, within a
# fraction of a second.
PROCESS_ENVIRONMENT = {"FLOWENGINE_NODE_HEARTBEAT": LISTENER_HEARTBEAT}


def _terminate_listeners(db: str, *pids: int) -> int:
    names = ", ".join(f"'flowengine listener {pid}'" for pid in pids)
    rows = run_admin(
        db,
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
        f" WHERE datname = current_database() AND application_name IN ({names})",
    )
    return sum(row["done"] for row in rows[0])


async def test_after_the_listener_connections_are_terminated_events_and_replays_cross_again(processes, pg_url):
    async with aiohttp.ClientSession() as session:
        a_process, a = await processes.start(session)
        b_process, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", chain(10, 30))
        assert status == 201, body
        before = [await metric(session, base, RECONNECTS) for base in (a, b)]
        assert _terminate_listeners(pg_url, a_process.pid, b_process.pid) == 2

        # B's listener arrives while A hears nothing: A learns of it once it has reconnected.
        async with session.ws_connect(f"{b}/api/events?workflow_id=chain") as remote:
            for base, count in zip((a, b), before):
                assert await wait_for_metric(session, base, RECONNECTS, lambda n, count=count: n > count) > count
            assert await wait_for_metric(session, a, "flowengine_cluster_remote_listener_filters", lambda n: n >= 1) >= 1
            status, started, _ = await post(session, f"{a}/api/workflows/chain/execute?wait=false", {"inputs": {"v": 1}})
            assert status == 202, started
            execution_id = started["execution_id"]
            # A replay on B: a request on A's channel, an answer on B's; both were reconnected.
            async with session.ws_connect(f"{b}/api/events?execution_id={execution_id}&replay=true") as replay:
                replayed = await receive_frames(replay, execution_id)
            live = await receive_frames(remote, execution_id)
        assert [json.loads(frame)["seq"] for frame in replayed] == list(range(1, 33))
        assert [json.loads(frame)["seq"] for frame in live] == list(range(1, 33))
        for base in (a, b):
            async with session.get(f"{base}/health") as response:
                assert (await response.json())["status"] == "healthy"


class Freezer:
    """A TCP relay to the database whose connections a test can freeze: from then on nothing
    passes either way, and nothing is closed (a half-open connection, as a cut network leaves
    it). Connections made after the freeze pass normally."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._frozen: list[asyncio.Event] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Freezer:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def freeze(self) -> None:
        for frozen in self._frozen:
            frozen.set()
        self._frozen = []

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream_writer]
        frozen = asyncio.Event()
        self._frozen.append(frozen)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while not frozen.is_set():
                read = asyncio.ensure_future(source.read(65536))
                stop = asyncio.ensure_future(frozen.wait())
                await asyncio.wait((read, stop), return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if frozen.is_set() or not read.done():
                    read.cancel()
                    break
                if not read.result():  # one side closed: so does the relay
                    sink.close()
                    return
                sink.write(read.result())
            await asyncio.Event().wait()  # frozen: hold both sockets open, pass nothing

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_a_half_open_listener_connection_is_found_by_its_ping_and_replaced(pg_url):
    address = urlsplit(pg_url)
    async with aiohttp.ClientSession() as session, Freezer((address.hostname, address.port)) as freezer:
        direct = address._replace(netloc=f"{address.username}@127.0.0.1:{freezer.port}").geturl()
        processes = Processes(pg_url, **PROCESS_ENVIRONMENT)
        try:
            _, a = await processes.start(session, FLOWENGINE_DB_DIRECT_URL=direct)
            _, b = await processes.start(session)
            status, body, _ = await post(session, f"{a}/api/workflows", chain(10, 30))
            assert status == 201, body
            before = await metric(session, a, RECONNECTS)
            freezer.freeze()  # A's LISTEN connection: open, silent
            assert await wait_for_metric(session, a, RECONNECTS, lambda n: n > before) > before
            status, started, _ = await post(session, f"{a}/api/workflows/chain/execute?wait=false", {"inputs": {"v": 1}})
            assert status == 202, started
            execution_id = started["execution_id"]
            async with session.ws_connect(f"{b}/api/events?execution_id={execution_id}&replay=true") as replay:
                replayed = await receive_frames(replay, execution_id)
            assert [json.loads(frame)["seq"] for frame in replayed] == list(range(1, 33))
        finally:
            outputs = processes.stop_all()
        assert all("[killed:" not in output for output in outputs), outputs
