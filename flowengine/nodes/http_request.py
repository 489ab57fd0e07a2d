"""http.request: one HTTP call through the server's shared aiohttp.ClientSession."""

from __future__ import annotations

import errno
import json
import socket
from typing import Any

import aiohttp

from ..errors import NodeError
from ..values import Value
from .api import ALL_OUTPUTS, ConfigKey, NodeContext, NodeType, Port, check_duration

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def _request_body(body: Value | None) -> dict[str, Any]:
    """aiohttp keyword arguments for the body: Json (and other structures) as JSON, String as
    UTF-8 text, Bytes as they are."""
    if body is None or body.type == "Null":
        return {}
    if body.type == "String":
        return {"data": body.value.encode("utf-8"), "headers": {"Content-Type": "text/plain; charset=utf-8"}}
    if body.type == "Bytes":
        return {"data": body.value}
    return {"json": body.to_python()}


def _field(value: Any) -> str:
    """A header or query value as text: strings as they are, the rest as JSON (``true``, ``2``)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """Say which of DNS, refused or another socket error stopped the connection."""
    os_error = exc.os_error
    if isinstance(exc, _DNS_ERRORS) or isinstance(os_error, socket.gaierror):
        return f"DNS lookup failed for {exc.host}: {os_error.strerror or os_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {exc.host}:{exc.port} failed: {exc}"
    # With several addresses (localhost: ::1 and 127.0.0.1) the OSError only lists the errnos.
    if isinstance(os_error, ConnectionRefusedError) or f"[Errno {errno.ECONNREFUSED}]" in str(os_error):
        return f"connection to {exc.host}:{exc.port} refused"
    return f"connection to {exc.host}:{exc.port} failed: {os_error.strerror or os_error}"


# aiohttp 3.11 added ClientConnectorDNSError; before it a DNS failure is a socket.gaierror.
_DNS_ERRORS: tuple[type[BaseException], ...] = tuple(
    error for error in (getattr(aiohttp, "ClientConnectorDNSError", None),) if error is not None
)


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the best guess
        return raw.decode("utf-8", errors="replace")


def _headers_value(headers: Any) -> Value:
    """Response headers as an Object; a repeated header's values are joined with ", "."""
    joined: dict[str, str] = {}
    for key, value in headers.items():
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return Value("Object", {key: Value("String", value) for key, value in joined.items()})


async def _request(ctx: NodeContext) -> dict[str, Any]:
    url = ctx.require("url")
    if not isinstance(url, str) or not url:
        raise NodeError("input 'url' must be a non-empty string")
    method = ctx.setting("method", "GET")
    headers = {str(k): _field(v) for k, v in (ctx.setting("headers") or {}).items()}
    query = {str(k): _field(v) for k, v in (ctx.setting("query") or {}).items()}
    timeout_ms = ctx.setting("timeout_ms", 30000)
    body = _request_body(ctx.inputs.get("body"))
    headers = {**body.pop("headers", {}), **headers}  # the node's own headers win
    session = ctx.http
    if session is None:
        raise NodeError("no HTTP client session is available")
    ctx.info(f"{method} {url}")
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            params=query or None,
            timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000),
            **body,
        ) as response:
            raw = await response.read()
            status = response.status
            response_headers = _headers_value(response.headers)
            charset = response.charset
            content_type = response.content_type
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise NodeError(f"{method} {url}: timed out after {timeout_ms:g} ms (config timeout_ms)") from None
    except aiohttp.InvalidURL:
        raise NodeError(f"{method} {url}: invalid URL") from None
    except aiohttp.ClientConnectorError as exc:
        raise NodeError(f"{method} {url}: {_connect_failure(exc)}") from None
    except aiohttp.ClientError as exc:
        raise NodeError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    ctx.info(f"Response status: {status}")
    if ctx.setting("fail_on_status", False) and not 200 <= status < 300:
        raise NodeError(f"{method} {url}: response status {status} (fail_on_status is set)")
    text = _decode(raw, charset)
    outputs: dict[str, Any] = {"status": status, "body": text, "headers": response_headers}
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            outputs["json"] = Value("Json", json.loads(text))
        except ValueError:
            pass  # a server that labels non-JSON as JSON: the text is still in 'body'
    return outputs


def _check(config: Any) -> None:
    check_duration(config, "timeout_ms", minimum=1)


HTTP_REQUEST = NodeType(
    type="http.request",
    description="Makes an HTTP request and outputs the response status, body, headers and JSON",
    category="http",
    run=_request,
    inputs=(
        Port("url", "The URL to request (or config 'url')", required=True, type="String"),
        Port("body", "Request body: Json is sent as JSON, String as text, Bytes as bytes"),
    ),
    main_input="body",
    main_output=ALL_OUTPUTS,
    outputs=(
        Port("status", "Response status code", type="Number"),
        Port("body", "Response body as text", type="String"),
        Port("headers", "Response headers", type="Object"),
        Port("json", "Response body parsed as JSON, when the response is JSON", type="Json"),
    ),
    config=(
        ConfigKey("url", "String", None, "The URL, when no 'url' input is connected", secret=True),
        ConfigKey("method", "String", "GET", "HTTP method", choices=METHODS),
        ConfigKey("headers", "Object", None, "Request headers", secret=True),
        ConfigKey("query", "Object", None, "Query parameters", secret=True),
        ConfigKey("body", "Any", None, "The request body, when no 'body' input is connected", secret=True),
        ConfigKey("timeout_ms", "Number", 30000, "Whole-request timeout in milliseconds"),
        ConfigKey("fail_on_status", "Bool", False, "Fail the node on a non-2xx status"),
    ),
    check_config=_check,
)

NODE_TYPES = [HTTP_REQUEST]
