"""Keeping secret values out of everything the server shows or writes.

Node config may name a secret (``{"type": "Secret", "value": "NAME"}``) that is resolved at
run time from FLOWENGINE_SECRET_NAME. Every resolved value is remembered here, and events,
execution results, history and log lines pass through ``redact_text`` on their way out, which
replaces with ``***`` each remembered value in the forms a program that echoes it is likely to
produce: as it is, JSON-escaped any number of times, percent-encoded (``+`` for spaces
included), and base64-encoded (standard and URL-safe alphabets). A secret whose value is a JSON
document is masked whole and field by field.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import weakref
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MASK",
    "SECRET_ENV_PREFIX",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "RedactingFilter",
    "install_log_redaction",
    "lookup",
    "resolve_secrets",
    "reusable_outputs",
    "secret_env_name",
    "secret_names",
]

MASK = "***"
SECRET_ENV_PREFIX = "FLOWENGINE_SECRET_"
# Values this short would mask ordinary text everywhere; they are refused at registration, and
# shorter string fields of a JSON secret are not masked on their own.
MIN_SECRET_LENGTH = 4
# A base64 piece shorter than this is too likely to occur in unrelated text to be masked.
_MIN_BASE64_PIECE = 6



def secret_env_name(name: str) -> str:
    return SECRET_ENV_PREFIX + name


def lookup(name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    try:
        return environ.get(secret_env_name(name))
    except (UnicodeError, ValueError):  # a name no environment can hold is a secret that is not set
        return None


def _json_strings(value: str, depth: int = 0) -> list[str]:
    """The string fields (values, not keys) of a JSON object or array, long enough to mask on
    their own, and those of JSON documents such fields hold in turn."""
    if depth > _MAX_JSON_NESTING or not value.lstrip().startswith(("{", "[")):
        return []
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return []
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) >= MIN_SECRET_LENGTH:
                found.append(item)
                found.extend(_json_strings(item, depth + 1))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


_MAX_JSON_NESTING = 4  # JSON text inside a JSON secret's field, and so on


# Backslashes that JSON escaping at any depth (or a percent-encoded backslash) puts in front of a
# character. Possessive, so a long run of backslashes in the text costs one pass, not a
# backtracking search over how to split it.
_BACKSLASHES = r"(?:\\|%5[cC])*+"
_SOME_BACKSLASHES = r"(?:\\|%5[cC])++"
# Control characters JSON writes as a backslash and a letter.
_SHORT_ESCAPES = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}


def _hex(number: int, digits: int) -> str:
    """A pattern for ``number`` in hex, either case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in f"{number:0{digits}x}")


def _char_pattern(char: str) -> str:
    """Every way one character of a secret can appear once echoed: as it is, percent-encoded
    (its UTF-8 bytes), ``+`` for a space, and as JSON escapes it (``\\"``, ``\\n``,
    ``\\u00e9``), however many times the text was escaped."""
    percent = "".join("%" + _hex(byte, 2) for byte in char.encode("utf-8", "surrogatepass"))
    if char == "\\":
        forms = [_SOME_BACKSLASHES]  # percent-encoded ones included
    elif char in '"/':
        forms = [f"{_BACKSLASHES}(?:{re.escape(char)}|{percent})"]
    else:
        forms = [re.escape(char), percent]
    if char == " ":
        forms.append(r"\+")
    code = ord(char)
    if code < 0x20 or code >= 0x7F:
        if code > 0xFFFF:  # JSON writes it as a surrogate pair
            code -= 0x10000
            units = [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
        else:
            units = [code]
        forms.append("".join(_SOME_BACKSLASHES + "u" + _hex(unit, 4) for unit in units))
        short = _SHORT_ESCAPES.get(char)
        if short is not None:
            forms.append(_SOME_BACKSLASHES + short)
    return "(?:" + "|".join(forms) + ")"


def _value_pattern(value: str) -> str:
    # A run of backslashes in the secret is one pattern: however many the text has, the
    # possessive group takes them all, and a second group would find none left.
    encoded = "".join(
        _char_pattern(char) for i, char in enumerate(value) if not (char == "\\" and value[i - 1 : i] == "\\")
    )
    pieces = sorted(_base64_pieces(value.encode("utf-8", "surrogatepass")), key=len, reverse=True)
    return "|".join([encoded, *(re.escape(piece) for piece in pieces)])


def _base64_pieces(raw: bytes) -> set[str]:
    """The base64 text that encodes these bytes wherever they sit in a longer byte string: for
    each of the three alignments, the characters that depend on these bytes only, in the
    standard and the URL-safe alphabet."""
    pieces = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw + bytes(2)).decode("ascii")
        first = -(-8 * offset // 6)  # the first character wholly inside ``raw``
        last = 8 * (offset + len(raw)) // 6  # one past the last one
        piece = encoded[first:last]
        if len(piece) >= _MIN_BASE64_PIECE:
            pieces.add(piece)
            pieces.add(piece.translate(_URLSAFE))
    return pieces


_URLSAFE = str.maketrans("+/", "-_")


class Redactor:
    """The secret values one engine has resolved, and the masking of them. Each engine (each
    server app, each ``flowengine run``) has its own, so one app never masks, nor keeps, another
    one's secrets; log records are masked with those of every live redactor."""

    def __init__(self) -> None:
        self._resolved: set[str] = set()  # every secret value remember() was given
        self._remembered: list[str] = []  # every value to mask: those, and the string fields of JSON ones
        # One expression matching every form of every value; None while no secret has been
        # resolved, when redaction costs nothing (callers on hot paths test it themselves).
        self.pattern: re.Pattern[str] | None = None
        _live.add(self)

    def remember(self, value: str) -> None:
        """Mask this value from now on, and each string field of it when it is a JSON document
        (idempotent)."""
        if value in self._resolved:  # the usual case: a secret resolved again
            return
        self._resolved.add(value)
        added = [text for text in {value, *_json_strings(value)} if text and text not in self._remembered]
        if not added:
            return
        self._remembered.extend(added)
        self._remembered.sort(key=len, reverse=True)  # a value inside a longer one must not cut it short
        self.pattern = re.compile("|".join(_value_pattern(text) for text in self._remembered))

    def forget(self) -> None:
        """Drop every remembered value (the engine is going away)."""
        self._resolved.clear()
        self._remembered.clear()
        self.pattern = None

    def redact_text(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(MASK, text)

    def redact_json(self, document: Any) -> Any:
        """A copy of a JSON-like document with secret values masked in every string (keys too),
        however deeply the value was escaped into text along the way."""
        if self.pattern is None:
            return document
        return self._redact(document)

    def _redact(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.redact_text(node)
        if isinstance(node, dict):
            return {self.redact_text(key) if isinstance(key, str) else key: self._redact(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [self._redact(item) for item in node]
        return node


_live: weakref.WeakSet[Redactor] = weakref.WeakSet()


def _mask_for_logs(text: str) -> str:
    for redactor in list(_live):
        text = redactor.redact_text(text)
    return text


def _any_active() -> bool:
    return any(redactor.pattern is not None for redactor in list(_live))


_original_factory = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _original_factory(*args, **kwargs)
    if _any_active():
        RedactingFilter().filter(record)
    return record


def install_log_redaction() -> None:
    """Mask secrets in every log record the process creates, whatever handler writes it
    (idempotent; costs nothing until a secret has been resolved)."""
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)


class RedactingFilter(logging.Filter):
    """Masks secret values in log records, message and traceback alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _any_active():
            return True
        message = record.getMessage()
        record.msg, record.args = _mask_for_logs(message), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = _mask_for_logs(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = _mask_for_logs(record.stack_info)
        return True


def secret_names(value: Any) -> list[str]:
    """The names of the secrets a (config) Value refers to, nested ones included."""
    names: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if item.type == "Secret":
            names.append(item.value)
        elif item.type == "Array":
            stack.extend(item.value)
        elif item.type == "Object":
            stack.extend(item.value.values())
    return names


def resolve_secrets(value: Any, redactor: Redactor, environ: Mapping[str, str] = os.environ) -> Any:
    """The Value with every Secret replaced by a String of its resolved value (in its
    ``format``, if it has one), the value remembered by ``redactor`` for masking. Raises
    LookupError naming the variable of a secret that is not set."""
    from ..values import SecretRef, Value

    if value.type == "Secret":
        resolved = lookup(value.value, environ)
        if resolved is None:
            raise LookupError(f"secret {value.value!r} is not set ({secret_env_name(value.value)})")
        redactor.remember(resolved)
        return Value("String", value.fill(resolved) if isinstance(value, SecretRef) else resolved)
    if value.type == "Array":
        return Value("Array", [resolve_secrets(item, redactor, environ) for item in value.value])
    if value.type == "Object":
        return Value("Object", {key: resolve_secrets(item, redactor, environ) for key, item in value.value.items()})
    return value


def reusable_outputs(workflow: Any, recorded: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The recorded outputs (node id -> outputs) that a retry may reuse instead of running the
    node again. Not those of a node whose config holds a Secret, nor those recorded with a mask
    in them: history keeps ``***`` where the secret was, and reusing that would send the mask
    downstream instead of the secret. Nor those of any node downstream of one that runs again,
    whose inputs may change with it."""
    again = {node.id for node in workflow.nodes if any(secret_names(value) for value in node.config.values())}
    again |= {
        node_id
        for node_id, outputs in recorded.items()
        if any(MASK in json.dumps(value.to_json()) for value in outputs.values())
    }
    successors: dict[str, list[str]] = {}
    for connection in workflow.connections:
        successors.setdefault(connection.from_node, []).append(connection.to_node)
    stack = list(again)
    while stack:
        for successor in successors.get(stack.pop(), ()):
            if successor not in again:
                again.add(successor)
                stack.append(successor)
    return {node_id: outputs for node_id, outputs in recorded.items() if node_id not in again}
