"""The HTTP connection layer under the application: what happens before a request reaches a
middleware, and how connections are accepted.

aiohttp answers a request its parser refuses (a bad request line, oversized or malformed headers,
a broken chunked body, ...) itself, before any middleware runs: with a ``text/plain`` 400 that
quotes the offending bytes, logged at ERROR with the same bytes (an ``Authorization`` header
included). This module replaces that answer with ``{"error": ...}`` and the status the problem
deserves, logged at DEBUG without request bytes. It also closes connections that do not send a
complete request head in time (slowloris), caps open connections below the descriptor limit, and
accepts connections with a loop that backs off, logging once, when descriptors run out (asyncio's
own accept loop retries and logs in a tight loop then).

``FlowengineRunner`` is the ``web.AppRunner`` to use: ``run_server`` (``flowengine serve``) and
the tests' server both go through it, so both get the same connection handling. ``run_server``
also picks the event loop (asyncio's or uvloop's) and, once start-up is done, freezes what it
built out of the garbage collector's reach.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import re
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from ..config import Config
from .keys import CONFIG

try:
    import resource
except ImportError:  # Windows: no descriptor limit to read
    resource = None  # type: ignore[assignment]

__all__ = ["FlowengineRunner", "ListeningSite", "bound_sockets", "describe_parse_error", "effective_max_connections", "run_server"]

log = logging.getLogger("flowengine.http")

# Idle keep-alive connections are closed after this long; aiohttp's default (an hour) would let
# idle clients hold every connection slot.
KEEPALIVE_TIMEOUT = 75.0
# Descriptors kept free of client connections: the database, outbound http.request connections,
# shell.exec pipes and the log need some too.
_RESERVED_FDS = 32
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# A repeated condition (descriptors exhausted, connection limit reached) is logged at most once
# per this many seconds, with a count of how often it happened in between.
_LOG_INTERVAL = 60.0

# RFC 9110 token characters: a request line starting with one of these and a space has a method
# that is well formed but unknown (501); anything else is not an HTTP request line (400).
_METHOD_IN_ERROR = re.compile(r"b['\"]([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) ")

# Phrases of the parser's errors (llhttp's and aiohttp's) and what to answer instead. The
# parser's own text is never sent or logged: it quotes the request's bytes.
_PARSER_PHRASES: tuple[tuple[str, int, str], ...] = (
    ("Missing 'Host' header", 400, "missing Host header: HTTP/1.1 requests must name the host"),
    ("Invalid header token", 400, "malformed header name: names are letters, digits and !#$%&'*+-.^_`|~"),
    ("Invalid header value char", 400, "a header value holds a control character"),
    ("Transfer-Encoding can't be present with Content-Length", 400, "Content-Length and Transfer-Encoding must not be sent together"),
    ("Invalid character in Content-Length", 400, "Content-Length must be a whole number of bytes"),
    ("Duplicate 'Content-Length'", 400, "Content-Length is sent more than once"),
    ("Duplicate '", 400, "a header that may appear only once is sent more than once"),
    ("Invalid character in chunk size", 400, "malformed chunked body: bad chunk size"),
    ("Invalid Transfer-Encoding", 400, "unsupported Transfer-Encoding: only chunked is accepted"),
    ("Request has invalid `Transfer-Encoding`", 400, "unsupported Transfer-Encoding: only chunked is accepted"),
    ("Invalid HTTP version", 400, "malformed request line: bad HTTP version"),
    ("Unexpected HTTP version", 505, "HTTP version not supported: use HTTP/1.0 or HTTP/1.1"),
)


def describe_parse_error(
    exc: BaseException | None, *, max_line_size: int, max_field_size: int, max_headers: int
) -> tuple[int, str]:
    """The status and message for a request the HTTP parser refused. The message never holds
    bytes of the request, except a well-formed method name."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == max_line_size and limit != max_field_size:
            return 414, f"request line longer than {max_line_size} bytes"
        return 431, f"a request header is longer than {max_field_size} bytes"
    if isinstance(exc, BadHttpMethod):
        if "HTTPS" in exc.message:
            return 400, "this port speaks plain HTTP: HTTPS (TLS) was received"
        found = _METHOD_IN_ERROR.search(exc.message) or _METHOD_IN_ERROR.search(f"b'{exc.line} ")
        if found:
            return 501, f"method {found[1]!r} is not implemented by this server"
        return 400, "malformed request line"
    if isinstance(exc, InvalidURLError):
        return 400, "malformed request target: a path of ASCII characters and %-escapes is expected"
    if isinstance(exc, ContentEncodingError):
        return 400, "request body is not encoded as its Content-Encoding says"
    if isinstance(exc, TransferEncodingError):
        return 400, "malformed chunked body"
    if isinstance(exc, ContentLengthError):
        return 400, "request body is shorter than its Content-Length"
    message = exc.message if isinstance(exc, HttpProcessingError) else ""
    if message.startswith("Too many headers"):
        return 431, f"more than {max_headers} request headers"
    for phrase, status, answer in _PARSER_PHRASES:
        if phrase in message:
            return status, answer
    if isinstance(exc, BadStatusLine):
        return 400, "malformed request line"
    return 400, "malformed HTTP request"


def _json_bytes(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as JSON and timing request heads."""

    __slots__ = ("_head_bytes_seen", "_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes_seen = False

    # -- errors -------------------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status == 500:
            # A fault in flowengine itself (the middleware answers every handler's exception),
            # so its traceback is worth an ERROR line.
            self.logger.error("internal error handling a request from %s", request.remote, exc_info=exc)
            answer = "internal error"
        elif status == 504:
            answer = "request timed out"
        else:
            status, answer = describe_parse_error(
                exc, max_line_size=self.max_line_size, max_field_size=self.max_field_size, max_headers=self.max_headers
            )
            # DEBUG and without the parser's text: malformed requests are routine on an open
            # port, and that text quotes header values (credentials among them).
            self.logger.debug("refused a malformed request from %s: %s %s", request.remote, status, answer)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started: the error cannot be sent")
        response = web.Response(body=_json_bytes(answer), status=status, content_type="application/json")
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, (RequestPayloadError, HttpProcessingError)):
            # A body that does not decode, met while discarding it after the answer was sent
            # (e.g. a 401 to a request whose gzip body is not gzip): the client's mistake.
            self.logger.debug("discarded an unreadable request body: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kwargs)

    # -- request head timeout -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a whole head arrived
            self._head_bytes_seen = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif data and not self._request_in_progress and self._payload_parser is None and not self._upgraded:
            # Part of a head (or the rest of a body no handler waits for): the clock runs.
            self._head_bytes_seen = True
            if self._head_timer is None:
                self._head_timer = self._loop.call_later(self._head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        waiting_for_head = self._waiter is not None and not self._waiter.done() and not self._messages
        if self.transport is None or self._force_close or not waiting_for_head:
            return
        if self._head_bytes_seen:
            body = _json_bytes(f"request head not complete within {self._head_timeout:g} s (FLOWENGINE_HEAD_TIMEOUT)")
            head = (
                "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
        self.force_close()


class _Server(web.Server):
    """aiohttp's server (a protocol factory) making JsonErrorRequestHandler connections, and
    counting them so that the accept loop can wait for room."""

    def __init__(self, plain: web.Server, *, head_timeout: float) -> None:
        # Same arguments as the server the application built (its handler_args, the runner's
        # access log, ...), which aiohttp keeps in _kwargs.
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )
        self.head_timeout = head_timeout
        self.open_connections = 0
        self._released: asyncio.Future[None] | None = None

    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, head_timeout=self.head_timeout, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self.open_connections += 1
        super().connection_made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.open_connections -= 1
        super().connection_lost(handler, exc)
        if self._released is not None and not self._released.done():
            self._released.set_result(None)

    async def wait_for_release(self, timeout: float) -> None:
        """Until a connection closes (its descriptor is free again), at most ``timeout`` s."""
        if self._released is None or self._released.done():
            self._released = self._loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._released), timeout)
        except TimeoutError:
            pass


class FlowengineRunner(web.AppRunner):
    """``web.AppRunner`` whose server answers parser errors as JSON and times request heads
    (``FLOWENGINE_HEAD_TIMEOUT`` from the application's config)."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        config = self.app.get(CONFIG) or Config()
        return _Server(plain, head_timeout=config.head_timeout)


class _RateLimitedWarning:
    """A warning logged once, then at most once per _LOG_INTERVAL with how often it recurred."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._next_at = 0.0
        self._suppressed = 0

    def __call__(self, message: str, *args: Any) -> None:
        now = self._loop.time()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" (and {self._suppressed} more time(s) in the last {_LOG_INTERVAL:g} s)"
        log.warning(message, *args)
        self._next_at, self._suppressed = now + _LOG_INTERVAL, 0


def effective_max_connections(configured: int) -> int:
    """``configured``, lowered to leave _RESERVED_FDS descriptors free under ``ulimit -n``."""
    if resource is None:
        return configured
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - _RESERVED_FDS))


def bound_sockets(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Bound sockets (not yet listening) for every address ``host`` resolves to. With
    ``reuse_port`` several processes may bind the same address (SO_REUSEPORT), and the kernel
    spreads new connections over those of them that listen."""
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _name, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listening_sockets(host: str, port: int, backlog: int, reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    sockets = bound_sockets(host, port, reuse_port=reuse_port)
    try:
        for sock in sockets:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _AcceptLoops:
    """The listening sockets and their accept tasks; closed the way asyncio's Server is."""

    def __init__(self, sockets: list[socket.socket], tasks: list[asyncio.Task[None]]) -> None:
        self.sockets = sockets
        self._tasks = tasks

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sock in self.sockets:
            sock.close()


class ListeningSite(web.BaseSite):
    """A TCP site with its own accept loop: at most ``max_connections`` open (the rest wait in
    the listen backlog), and a pause instead of a busy retry when descriptors run out."""

    __slots__ = ("_host", "_max_connections", "_port", "_reuse_port", "_warn")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._max_connections = host, port, max_connections
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, _Server), "ListeningSite needs a FlowengineRunner"
        loop = asyncio.get_running_loop()
        self._warn = _RateLimitedWarning(loop)
        sockets = _listening_sockets(self._host, self._port, self._backlog, self._reuse_port)
        tasks = [loop.create_task(self._accept(loop, sock, server)) for sock in sockets]
        self._server = _AcceptLoops(sockets, tasks)  # type: ignore[assignment]

    async def _accept(self, loop: asyncio.AbstractEventLoop, listener: socket.socket, server: _Server) -> None:
        while True:
            if server.open_connections >= self._max_connections:
                self._warn(
                    "connection limit reached: %d open (FLOWENGINE_MAX_CONNECTIONS); new connections wait to be accepted",
                    server.open_connections,
                )
                await server.wait_for_release(1.0)
                continue
            try:
                conn, _address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._warn(
                        "cannot accept connections: %s (%d open); retrying as connections close (raise ulimit -n or lower FLOWENGINE_MAX_CONNECTIONS)",
                        exc.strerror or exc,
                        server.open_connections,
                    )
                    await server.wait_for_release(1.0)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EAGAIN):
                    self._warn("accepting a connection failed: %s", exc)
                    await asyncio.sleep(0.1)
                continue
            try:
                conn.setblocking(False)
                await loop.connect_accepted_socket(server, conn)
            except OSError as exc:
                conn.close()
                self._warn("setting up an accepted connection failed: %s", exc)


GC_YOUNG_THRESHOLD = 10_000  # allocations between two collections of the youngest generation


def run_server(
    app: web.Application,
    *,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    access_log: logging.Logger | None,
    access_log_class: type[Any],
    shutdown_timeout: float,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    reuse_port: bool = False,
    stop_on: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut it down gracefully, on the event loop
    ``loop_factory`` makes (None: asyncio's own, as ``asyncio.run`` makes it). ``reuse_port``
    shares the port with other processes (a worker of ``flowengine serve --workers N``);
    ``stop_on``, if given, is called with the function that stops the server gracefully, once
    it listens, for a reason of its own to stop besides a signal (its supervisor went away).

    Raises OSError when the address cannot be bound."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(
                _serve(
                    app,
                    host,
                    port,
                    on_listening,
                    reuse_port=reuse_port,
                    stop_on=stop_on,
                    access_log=access_log,
                    access_log_class=access_log_class,
                    shutdown_timeout=shutdown_timeout,
                )
            )
    except KeyboardInterrupt:  # Ctrl-C during start-up, before the signal handlers were set
        pass


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    *,
    reuse_port: bool,
    stop_on: Callable[[Callable[[], None]], None] | None,
    **runner_args: Any,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner = FlowengineRunner(app, keepalive_timeout=KEEPALIVE_TIMEOUT, **runner_args)
    await runner.setup()
    try:
        configured = app[CONFIG].max_connections
        max_connections = effective_max_connections(configured)
        if max_connections < configured:
            log.warning(
                "FLOWENGINE_MAX_CONNECTIONS lowered from %d to %d: the process may open only %d files (ulimit -n)",
                configured,
                max_connections,
                max_connections + _RESERVED_FDS,
            )
        site = ListeningSite(runner, host, port, max_connections=max_connections, reuse_port=reuse_port)
        await site.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if stop_on is not None:
            stop_on(stop.set)
        # What start-up built (modules, the app, plugins, loaded workflows) lives as long as the
        # process: frozen out of the collector's generations, it is no longer traversed by every
        # full collection that the executions' garbage triggers. Collected first, so that no
        # start-up garbage is frozen with it.
        gc.collect()
        gc.freeze()
        # An execution's objects are freed by reference counting as it ends (the engine breaks
        # its own cycles), so the youngest generation fills with live, short-lived objects: at
        # CPython's default of 700 it was collected every few requests, for nothing, costing
        # each request about 10 µs under load. Cycles are still collected, less often.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        on_listening()
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
