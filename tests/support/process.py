"""A real flowengine server in a child process, for tests that kill it or restart it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import aiohttp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db: str, port: int, **environment: str) -> subprocess.Popen:
    """``python -m flowengine`` on 127.0.0.1:port with this database; output on its stdout."""
    env = {**os.environ, "BIND_ADDRESS": f"127.0.0.1:{port}", "FLOWENGINE_DB": db, "LOG_LEVEL": "info", **environment}
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


async def wait_healthy(session: aiohttp.ClientSession, base: str, process: subprocess.Popen) -> None:
    for _ in range(400):
        assert process.poll() is None, process.stdout.read().decode()
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not become healthy")


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, wait, and return what the process printed."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    output = process.stdout.read().decode()
    process.stdout.close()
    return output
