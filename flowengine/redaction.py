"""Keeping secret values out of everything the server shows or writes.

Node config may name a secret (``{"type": "Secret", "value": "NAME"}``) that is resolved at
run time from FLOWENGINE_SECRET_NAME. Every resolved value is remembered here, and events,
execution results, history and log lines pass through ``redact_text`` on their way out, which
replaces each remembered value (and its JSON-escaped form) with ``***``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

__all__ = [
    "MASK",
    "SECRET_ENV_PREFIX",
    "RedactingFilter",
    "install_log_redaction",
    "active",
    "redact_json",
    "redact_text",
    "remember",
    "secret_env_name",
]

MASK = "***"
SECRET_ENV_PREFIX = "FLOWENGINE_SECRET_"
# Values this short would mask ordinary text everywhere; they are refused at registration.
MIN_SECRET_LENGTH = 4

_forms: list[str] = []  # every form to replace, longest first so overlaps mask fully


def secret_env_name(name: str) -> str:
    return SECRET_ENV_PREFIX + name


def lookup(name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get(secret_env_name(name))


def remember(value: str) -> None:
    """Mask this value from now on (idempotent)."""
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    added = False
    for form in {value, escaped, json.dumps(value)[1:-1]}:
        if form and form not in _forms:
            _forms.append(form)
            added = True
    if added:
        _forms.sort(key=len, reverse=True)


def active() -> bool:
    """Whether any secret has been resolved (when not, redaction costs nothing)."""
    return bool(_forms)


def redact_text(text: str) -> str:
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_json(document: Any) -> Any:
    """A copy of a JSON-like document with secret values masked in every string (keys too),
    however deeply the value was escaped into text along the way."""
    if not _forms:
        return document
    return _redact(document)


def _redact(node: Any) -> Any:
    if isinstance(node, str):
        return redact_text(node)
    if isinstance(node, dict):
        return {redact_text(key) if isinstance(key, str) else key: _redact(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_redact(item) for item in node]
    return node


_original_factory = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _original_factory(*args, **kwargs)
    if _forms:
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
        if not _forms:
            return True
        message = record.getMessage()
        record.msg, record.args = redact_text(message), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact_text(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
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


def resolve_secrets(value: Any, environ: Mapping[str, str] = os.environ) -> Any:
    """The Value with every Secret replaced by a String of its resolved value (remembered
    for masking). Raises LookupError naming the variable of a secret that is not set."""
    from .values import Value

    if value.type == "Secret":
        resolved = lookup(value.value, environ)
        if resolved is None:
            raise LookupError(f"secret {value.value!r} is not set ({secret_env_name(value.value)})")
        remember(resolved)
        return Value("String", resolved)
    if value.type == "Array":
        return Value("Array", [resolve_secrets(item, environ) for item in value.value])
    if value.type == "Object":
        return Value("Object", {key: resolve_secrets(item, environ) for key, item in value.value.items()})
    return value
