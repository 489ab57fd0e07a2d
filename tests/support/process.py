"""A real flowengine server in a child process, for tests that kill it or restart it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp

STOP_TIMEOUT = 20.0  # a bound on a hang, not a speed expectation


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it), on an IPv4 or IPv6 host."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
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


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> tuple[int, str]:
    """Send ``signum`` (unless it has exited), wait, and return the exit code and what the
    process printed: its stderr, or its stdout when stderr went there. A process still running
    after ``timeout`` seconds is killed, and the output says so."""
    if process.poll() is None:
        process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=timeout)
        killed = ""
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        killed = f"\n[killed: still running {timeout} s after signal {signum}]"
    printed = err if err is not None else out
    if isinstance(printed, bytes):
        printed = printed.decode()
    return process.returncode, (printed or "") + killed
