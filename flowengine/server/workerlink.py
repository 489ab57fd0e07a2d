"""The local channel between the supervisor of ``flowengine serve --workers N`` and one of its
workers: one end of a socket pair each, carrying frames (a 4-byte big-endian length, then a
JSON object), with requests and replies in both directions.

- ``{"op": name, "id": n, ...}`` is a request; the other side answers ``{"id": n, "reply": x}``
  or ``{"id": n, "error": text}``. Without ``id`` it is a notification, never answered.
- Each request runs as its own task, so a handler may itself wait on a request the other way
  (the supervisor, asked for the metrics by one worker, asks that worker for its snapshot).
- The end of the stream means the other process is gone: pending requests fail with
  LinkClosed and ``on_close`` runs once. A worker stops when its supervisor is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Handler", "Link", "LinkClosed"]

log = logging.getLogger("flowengine.workers")

_HEADER = struct.Struct(">I")
# A frame is one registry snapshot at most; a bound so that a corrupt length cannot make the
# reader allocate gigabytes.
_MAX_FRAME = 256 * 1024 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class LinkClosed(ConnectionError):
    """The process at the other end is gone (or the link was closed here)."""


class Link:
    """One end of the channel. ``start`` it on a running loop; ``close`` when done."""

    def __init__(self, sock: socket.socket, handlers: dict[str, Handler], on_close: Callable[[], None] | None = None) -> None:
        self._sock = sock
        self._handlers = handlers
        self._on_close = on_close
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.closed = False

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self._sock, limit=2**16)
        self._reader = asyncio.get_running_loop().create_task(self._read(reader))

    async def request(self, op: str, timeout: float, **fields: Any) -> Any:
        """Ask the other side; its handler's result. LinkClosed if it is gone, TimeoutError
        after ``timeout`` seconds, RuntimeError with its text if the handler failed."""
        if self.closed:
            raise LinkClosed("the other process is gone")
        self._next_id += 1
        number = self._next_id
        future = self._pending[number] = asyncio.get_running_loop().create_future()
        try:
            self._send({"op": op, "id": number, **fields})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(number, None)

    def notify(self, op: str, **fields: Any) -> None:
        if not self.closed:
            self._send({"op": op, **fields})

    async def close(self) -> None:
        self._closed()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None, "Link.start first"
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        try:
            self._writer.write(_HEADER.pack(len(body)) + body)
        except (ConnectionError, RuntimeError) as exc:
            raise LinkClosed(str(exc)) from None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(_HEADER.size)
                (size,) = _HEADER.unpack(header)
                if size > _MAX_FRAME:
                    log.error("worker link: a frame of %d bytes; closing the link", size)
                    return
                message = json.loads(await reader.readexactly(size))
                if not isinstance(message, dict):
                    raise ValueError("a frame that is not a JSON object")
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ValueError as exc:  # only a bug on the other side could send this
            log.error("worker link: unreadable frame (%s); closing the link", exc)
        finally:
            self._closed()

    def _dispatch(self, message: dict[str, Any]) -> None:
        number = message.get("id")
        op = message.get("op")
        if op is None:  # a reply
            future = self._pending.get(number)  # type: ignore[arg-type]
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message.get("reply"))
            return
        task = asyncio.get_running_loop().create_task(self._answer(op, number, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, op: str, number: int | None, message: dict[str, Any]) -> None:
        handler = self._handlers.get(op)
        try:
            if handler is None:
                raise RuntimeError(f"unknown request {op!r}")
            result = await handler(message)
        except Exception as exc:
            if number is None:
                log.exception("worker link: handling %r failed", op)
            else:
                self._reply({"id": number, "error": f"{type(exc).__name__}: {exc}"})
            return
        if number is not None:
            self._reply({"id": number, "reply": result})

    def _reply(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(LinkClosed):
            if not self.closed:
                self._send(message)

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkClosed("the other process is gone"))
        if self._on_close is not None:
            self._on_close()
