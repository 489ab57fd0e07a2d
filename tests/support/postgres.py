"""A throwaway PostgreSQL cluster for tests: found on this machine, started once per session,
one fresh database per test.

The binaries are looked up on PATH, then in ``/usr/lib/postgresql/*/bin`` (Debian). As root
they run as the ``postgres`` user (PostgreSQL refuses to run as root). ``initdb`` runs once per
machine into a cached template directory that each session copies; the cluster listens on a
free port on 127.0.0.1 without fsync (a test's data need not survive a power loss) and is
stopped with ``-m immediate`` at the end. ``FLOWENGINE_TEST_PG_URL`` points the tests at an
existing cluster instead (a URL whose user may create databases).

Without binaries or asyncpg the PostgreSQL tests are skipped with the reason, except under
``CI=true``, where they fail: CI installs PostgreSQL (``.ci/run``), so a skip there would hide
a broken set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .process import free_port

__all__ = ["PostgresCluster", "TcpProxy", "missing", "run_admin", "unavailable"]

# Where the template lives: a place the postgres user can reach (not root's home).
_CACHE = Path(tempfile.gettempdir()) / "flowengine-test-postgres"
_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=32MB",
    "unix_socket_directories=",
)


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI=true: {reason}")
    pytest.skip(reason)


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[test]')"
    if os.environ.get("FLOWENGINE_TEST_PG_URL"):
        return None
    if _bin_dir() is None:
        return "no PostgreSQL binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


def run_admin(url: str, *statements: str) -> list[Any]:
    """Run statements on ``url`` from a thread with its own event loop (fixtures are
    synchronous and may be called while a test's loop is being set up)."""
    import asyncpg

    results: list[Any] = []
    failure: list[BaseException] = []

    async def go() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            for statement in statements:
                results.append(await connection.fetch(statement))
        finally:
            await connection.close()

    def target() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]
    return results


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
        return handle.read().rpartition(")")[2].split()[0] != "Z"
    return True


class PostgresCluster:
    """A running cluster (ours or the one FLOWENGINE_TEST_PG_URL names)."""

    def __init__(self, *, durable: bool = False) -> None:
        # durable: keep PostgreSQL's fsync and synchronous commit (benchmarks); tests go without.
        self.durable = durable
        self._counter = itertools.count(1)
        self._own = not os.environ.get("FLOWENGINE_TEST_PG_URL")
        self.data_dir: Path | None = None
        self.bin_dir = _bin_dir()
        self._as_postgres = os.geteuid() == 0
        if self._own:
            self.port = free_port()
            self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        else:
            self.admin_url = os.environ["FLOWENGINE_TEST_PG_URL"]
        self.prefix = f"fe_test_{uuid.uuid4().hex[:8]}_"

    def _command(self, *argv: str) -> list[str]:
        assert self.bin_dir is not None
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _chown(self, path: Path) -> None:
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], check=True)

    def _template(self) -> Path:
        """initdb once per machine (and PostgreSQL version); later sessions copy the result."""
        assert self.bin_dir is not None
        template = _CACHE / self.bin_dir.parent.name.replace("/", "_") / "template"
        if (template / "PG_VERSION").exists():
            return template
        template.parent.mkdir(parents=True, exist_ok=True)
        for folder in (_CACHE, template.parent):
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o755)
        building = Path(tempfile.mkdtemp(prefix="template-", dir=template.parent))
        os.chmod(building, 0o700)
        self._chown(building)
        subprocess.run(
            self._command("initdb", "-D", str(building), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            building.rename(template)
        except OSError:  # another session built it meanwhile
            shutil.rmtree(building, ignore_errors=True)
        return template

    def start(self) -> None:
        if not self._own:
            return
        template = self._template()
        self.data_dir = Path(tempfile.mkdtemp(prefix="flowengine-pg-"))
        os.chmod(self.data_dir, 0o700)
        shutil.copytree(template, self.data_dir, dirs_exist_ok=True, symlinks=True)
        self._chown(self.data_dir)
        settings = [setting for setting in _SETTINGS if not (self.durable and setting.endswith("=off"))]
        options = " ".join(f"-c {setting}" for setting in (*settings, "listen_addresses=127.0.0.1", f"port={self.port}"))
        result = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "start"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if result.returncode != 0:
            log = (self.data_dir / "server.log").read_text(errors="replace") if (self.data_dir / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stdout.decode(errors='replace')}\n{log}")

    def stop(self) -> None:
        if not self._own or self.data_dir is None:
            return
        postmaster = self.postmaster_pid()
        subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "--no-wait", "stop"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        # Bounded: a postmaster that has not gone after a few seconds is killed outright.
        for _ in range(100):
            if postmaster is None or not _alive(postmaster):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(OSError):
                os.kill(postmaster, signal.SIGKILL)
        # A session's databases come to hundreds of megabytes: removed by a detached process, so
        # the test run does not wait seconds for it.
        subprocess.run(["sh", "-c", 'rm -rf "$1" >/dev/null 2>&1 &', "sh", str(self.data_dir)], check=False)

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"{self.prefix}{next(self._counter)}"
        # FILE_COPY copies template0's files as they are, which is faster for a small template
        # than PostgreSQL 15's default (writing every page to the WAL); its checkpoint costs
        # little with fsync off. The benchmarks' durable cluster keeps the default.
        strategy = "" if self.durable else " STRATEGY FILE_COPY"
        run_admin(self.admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
        return self.url_for(name)

    def drop_databases(self) -> None:
        """Drop the databases this session created (only matters on an existing cluster)."""
        if self._own:
            return  # the whole cluster goes
        names = [f"{self.prefix}{n}" for n in range(1, next(self._counter))]
        for name in names:
            with contextlib.suppress(Exception):  # one left behind harms no one
                run_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def postmaster_pid(self) -> int | None:
        if self.data_dir is None:
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class TcpProxy:
    """A TCP relay from a local port to the cluster, which a test can cut (an outage: every
    connection dropped, new ones refused) and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream_writer))

    async def cut(self) -> None:
        """Drop every relayed connection and stop accepting new ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()
