"""A process holding N WebSocket listeners on ``/api/events``, reading every byte sent.

``python -m bench.ws_listeners 127.0.0.1 PORT N`` connects N listeners, prints ``ready``, then
answers each ``count`` line on stdin with a JSON line (events received so far, listeners the
server closed) and exits on ``stop``, end of input, or after --max-seconds.

The listeners speak just enough WebSocket to connect, then read raw bytes and count events
with ``bytes.count`` (each event object has exactly one ``"execution_id":`` key). A Python
client that decoded every frame would saturate its own core long before the server does, and
this benchmark measures the server's cost of serving listeners, not the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys

_EVENT = b'"execution_id":'
_TOO_SLOW = b"\x03\xf5too slow"  # a close frame with code 1013 and the server's reason
_CARRY = max(len(_EVENT), len(_TOO_SLOW)) - 1

_received = 0
_closed = 0


async def _connect(host: str, port: int) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"WebSocket upgrade refused: {head[:200]!r}")
    reader._bench_writer = writer  # type: ignore[attr-defined]  # keep the transport alive
    return reader


async def _read(reader: asyncio.StreamReader) -> None:
    global _received, _closed
    tail = b""
    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        data = tail + chunk  # a marker split across two reads is counted once, in the second
        _received += data.count(_EVENT) - tail.count(_EVENT)
        if _TOO_SLOW in data:
            break
        tail = data[-_CARRY:]
    _closed += 1


async def _commands() -> None:
    # stdin as an asyncio stream: no reader thread left blocked when the time limit hits.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        command = line.decode().strip()
        if command == "count":
            print(json.dumps({"received": _received, "closed": _closed}), flush=True)
        elif command == "stop" or not line:
            return


async def main(host: str, port: int, count: int, max_seconds: float) -> None:
    if host != "127.0.0.1":
        raise SystemExit("listeners only connect to 127.0.0.1")
    readers = [await _connect(host, port) for _ in range(count)]
    tasks = [asyncio.create_task(_read(reader)) for reader in readers]
    print("ready", flush=True)
    try:
        await asyncio.wait_for(_commands(), max_seconds)
    except asyncio.TimeoutError:
        pass
    for reader in readers:
        reader._bench_writer.close()  # type: ignore[attr-defined]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.count, args.max_seconds))
