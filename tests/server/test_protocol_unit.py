"""flowengine.server.protocol's pieces on their own: the accept loop when descriptors run out, and the
mapping from the HTTP parser's errors to answers."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong

from flowengine.server.app import make_app
from flowengine.server.protocol import FlowengineRunner, ListeningSite, describe_parse_error

LIMITS = {"max_line_size": 8190, "max_field_size": 65536, "max_headers": 128}


async def test_out_of_descriptors_pauses_accepting_and_logs_once(config, monkeypatch, caplog):
    """asyncio's own accept loop retried EMFILE in a tight loop, logging each time; this one
    waits for a connection to close (or a second) and logs one line."""
    caplog.set_level(logging.WARNING, logger="flowengine.http")
    loop = asyncio.get_running_loop()
    real_accept = loop.sock_accept
    exhausted = True
    attempts = 0

    async def accept(sock):
        nonlocal attempts
        if exhausted:
            attempts += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_accept(sock)

    monkeypatch.setattr(loop, "sock_accept", accept)
    runner = FlowengineRunner(make_app(dataclasses.replace(config, db=":memory:")))
    await runner.setup()
    try:
        site = ListeningSite(runner, "127.0.0.1", 0, max_connections=100)
        await site.start()
        port = runner.addresses[0][1]
        await asyncio.sleep(1.5)  # an observation window, not a speed expectation
        assert 1 <= attempts <= 3, f"{attempts} accept attempts while out of descriptors"
        warnings = [record.getMessage() for record in caplog.records]
        assert len(warnings) == 1 and "Too many open files" in warnings[0], warnings
        exhausted = False
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=10)) as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "exc, status, fragment",
    [
        (LineTooLong(b"/aaaa...", 8190), 414, "request line longer than 8190 bytes"),
        (LineTooLong(b"Bearer secret...", 65536), 431, "header is longer than 65536 bytes"),
        (BadHttpMessage("Too many headers received"), 431, "more than 128 request headers"),
        (BadHttpMethod(error="Invalid method encountered:\n\n  b'BREW /pot HTTP/1.1'\n  ^"), 501, "'BREW' is not implemented"),
        (BadHttpMethod(error="Invalid method encountered:\n\n  b'\\x00\\x01 / HTTP/1.1'\n  ^"), 400, "malformed request line"),
        (BadHttpMethod(error="Received HTTPS traffic on an HTTP port"), 400, "HTTPS"),
        (BadHttpMessage("Something new in a later aiohttp: b'Authorization: Bearer abc'"), 400, "malformed HTTP request"),
    ],
)
def test_parser_errors_map_to_statuses_without_request_bytes(exc, status, fragment):
    answered, message = describe_parse_error(exc, **LIMITS)
    assert (answered, fragment in message) == (status, True), message
    assert "secret" not in message and "Bearer" not in message and "\\x" not in message
