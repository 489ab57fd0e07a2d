"""http.request: one HTTP call through the server's shared aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from ..errors import NodeError
from ..values import Value
from .api import ConfigKey, NodeContext, NodeType, Port

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def _request_body(body: Value | None) -> dict[str, Any]:
    if body is None or body.type == "Null":
        return {}
    if body.type == "String":
        return {"data": body.value.encode("utf-8"), "headers": {"Content-Type": "text/plain; charset=utf-8"}}
    if body.type == "Bytes":
        return {"data": body.value}
    return {"json": body.to_python()}


async def _request(ctx: NodeContext) -> dict[str, Any]:
    url = ctx.require("url")
    if not isinstance(url, str) or not url:
        raise NodeError("input 'url' must be a non-empty string")
    method = ctx.setting("method", "GET")
    headers = {str(k): str(v) for k, v in (ctx.setting("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (ctx.setting("query") or {}).items()}
    timeout_ms = ctx.setting("timeout_ms", 30000)
    body = _request_body(ctx.inputs.get("body"))
    headers = {**body.pop("headers", {}), **headers}
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
            response_headers = {key: value for key, value in response.headers.items()}
            charset = response.charset or "utf-8"
            content_type = response.content_type
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        raise NodeError(f"{method} {url}: timed out after {timeout_ms:g} ms") from None
    except aiohttp.InvalidURL:
        raise NodeError(f"{method} {url}: invalid URL") from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise NodeError(f"{method} {url}: DNS lookup failed for {exc.host}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error)
        raise NodeError(f"{method} {url}: connection to {exc.host}:{exc.port} failed: {reason}") from None
    except aiohttp.ClientError as exc:
        raise NodeError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    ctx.info(f"Response status: {status}")
    if ctx.setting("fail_on_status", False) and not 200 <= status < 300:
        raise NodeError(f"{method} {url}: response status {status} (fail_on_status is set)")
    text = raw.decode(charset, errors="replace")
    outputs: dict[str, Any] = {
        "status": status,
        "body": text,
        "headers": Value("Object", {key: Value("String", value) for key, value in response_headers.items()}),
    }
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            outputs["json"] = Value("Json", json.loads(text))
        except ValueError:
            pass
    return outputs


def _check(config: Any) -> None:
    timeout = config.get("timeout_ms")
    if timeout is not None and timeout.value <= 0:
        raise ValueError("timeout_ms must be positive")


HTTP_REQUEST = NodeType(
    type="http.request",
    description="Makes an HTTP request and outputs the response status, body, headers and JSON",
    category="http",
    run=_request,
    inputs=(
        Port("url", "The URL to request (or config 'url')", required=True, type="String"),
        Port("body", "Request body: Json is sent as JSON, String as text, Bytes as bytes"),
    ),
    outputs=(
        Port("status", "Response status code", type="Number"),
        Port("body", "Response body as text", type="String"),
        Port("headers", "Response headers", type="Object"),
        Port("json", "Response body parsed as JSON, when the response is JSON", type="Json"),
    ),
    config=(
        ConfigKey("url", "String", None, "The URL, when no 'url' input is connected"),
        ConfigKey("method", "String", "GET", "HTTP method", choices=METHODS),
        ConfigKey("headers", "Object", None, "Request headers"),
        ConfigKey("query", "Object", None, "Query parameters"),
        ConfigKey("timeout_ms", "Number", 30000, "Whole-request timeout in milliseconds"),
        ConfigKey("fail_on_status", "Bool", False, "Fail the node on a non-2xx status"),
    ),
    check_config=_check,
)

NODE_TYPES = [HTTP_REQUEST]
