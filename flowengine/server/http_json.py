"""JSON in and out of HTTP: bounded-depth request bodies and ``{"error": ...}`` responses."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_QUERY_INT",
    "ClientError",
    "error_response",
    "json_object",
    "json_response",
    "json_text_response",
    "link",
    "parse_json_text",
    "query_bool",
    "query_int",
    "read_json",
]

MAX_QUERY_INT = 2**63 - 1  # what SQLite's INTEGER holds

MAX_JSON_DEPTH = 64

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ClientError(Exception):
    """A client mistake to be answered with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_text_response(_dumps(body), status, headers)


def json_text_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A response whose body is this JSON text."""
    # backslashreplace: a lone surrogate (a node may output one) becomes its JSON escape, \udc80,
    # instead of a UnicodeEncodeError; the document decodes to the same string.
    return web.Response(
        body=text.encode("utf-8", "backslashreplace"),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status=status, headers=headers)


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` deep; iterative, so no RecursionError."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
    return False


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON: a document holding one could
    # not be sent back as valid JSON, so refuse it at the door.
    raise _NotJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # 1e400 parses to inf, which has the same problem as the Infinity literal.
    number = float(text)
    if not math.isfinite(number):
        raise _NotJson(f"{text} is too large for a JSON number")
    return number


# Built once: json.loads with options builds a new decoder on every call.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def parse_json_text(text: str | bytes, what: str = "request body") -> Any:
    """Parse JSON, refusing nesting deeper than MAX_JSON_DEPTH; ValueError says what and where."""
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        document = _decoder.decode(text)
    except _NotJson as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})") from None
    except RecursionError:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not valid UTF-8") from None
    # Nesting deeper than the limit needs at least two characters a level.
    if len(text) > 2 * MAX_JSON_DEPTH and isinstance(document, (dict, list)) and _deeper_than(document, MAX_JSON_DEPTH):
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def json_object(raw: bytes, *, allow_empty: bool = False, not_object: str = "request body must be a JSON object") -> dict[str, Any]:
    """A request body's bytes as a JSON object (``{}`` for an empty body when ``allow_empty``);
    a ClientError (400) that says what is wrong otherwise."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise ClientError(400, "request body is empty: send a JSON object")
    try:
        document = parse_json_text(raw)
    except ValueError as exc:
        raise ClientError(400, str(exc)) from None
    if not isinstance(document, dict):
        raise ClientError(400, not_object)
    return document


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object. An empty body is ``{}`` when ``allow_empty``."""
    return json_object(await request.read(), allow_empty=allow_empty)


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    """A true/false query parameter (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""
    text = request.query.get(name)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ClientError(400, f"{name}: expected true or false, got {lowered!r}")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """A whole-number query parameter from 1 to MAX_QUERY_INT, or ``default`` when absent.
    Present but empty (``?limit=``) is not a number, as the OpenAPI document says."""
    text = request.query.get(name)
    if text is None:
        return default
    # isascii: str.isdigit() accepts digits such as "²" that int() refuses.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_QUERY_INT:
        raise ClientError(400, f"{name}: expected a whole number from 1 to {MAX_QUERY_INT}, got {text!r}")
    return int(text)


def link(request: web.Request, operation: str, **parts: str) -> str:
    """The path of the route named ``operation`` (its OpenAPI operation id, routes.py) with
    ``parts`` filled in, so that no handler spells a route's path. Not ``url_for``: that
    percent-encodes characters such as ``:`` that workflow ids may hold."""
    return request.app.router[operation].canonical.format(**parts)
