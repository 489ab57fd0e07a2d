"""Requests written byte by byte on a socket, for what aiohttp's client refuses to send
(undecodable header bytes, malformed request lines, oversized heads)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import BaseTestServer

__all__ = ["exchange"]

READ_LIMIT_S = 10.0  # a bound on a hang, not a speed expectation


async def exchange(server: BaseTestServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a new connection; the status, headers (names in lower case) and body of
    the answer."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_LIMIT_S)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), READ_LIMIT_S)
        return int(status_line.split(" ")[1]), headers, body
    finally:
        writer.close()
