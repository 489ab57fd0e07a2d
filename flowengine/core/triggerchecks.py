"""Validation of each trigger type's own fields (a webhook's path and signature settings, a
cron expression that can fire, an event type that exists). Plain model code: the model's
validation runs it whoever validates, the server or ``flowengine validate``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import ValidationError
from ..lib.cron import CronError, CronSchedule
from ..lib.signatures import SCHEMES
from ..values import SecretRef, decode_value, encodable
from .events import EVENT_TYPES
from .redaction import MASK, lookup, secret_env_name

__all__ = ["TRIGGER_CHECKS", "webhook_path"]

_PATH = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")


def webhook_path(trigger_type: dict[str, Any]) -> str:
    return str(trigger_type["path"]).strip("/")


def _check_webhook(trigger_type: dict[str, Any], path: str) -> None:
    hook_path = webhook_path(trigger_type)
    if not _PATH.fullmatch(hook_path):
        raise ValidationError(f"{path}.path: use letters, digits and . _ ~ - separated by /, got {trigger_type['path']!r}")
    if any(segment in (".", "..") for segment in hook_path.split("/")):
        raise ValidationError(f"{path}.path: '.' and '..' are not path segments a webhook may use, got {trigger_type['path']!r}")
    secret = trigger_type.get("secret")
    scheme = trigger_type.get("signature")
    if scheme is not None and scheme not in SCHEMES:
        raise ValidationError(f"{path}.signature: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    if secret is None:
        if scheme is not None:
            raise ValidationError(f"{path}.signature: a signature needs a secret to check it with (add {path}.secret)")
        return
    if isinstance(secret, dict):  # {"type": "Secret", "value": "NAME"}: from FLOWENGINE_SECRET_NAME
        reference = decode_value(secret, f"{path}.secret", strict=True, allow_secret=True)
        if reference.type != "Secret":
            raise ValidationError(f"{path}.secret: expected a string or a Secret reference")
        if isinstance(reference, SecretRef) and reference.format is not None:
            raise ValidationError(f"{path}.secret: a webhook's Secret takes no format")
        if lookup(reference.value) is None:
            raise ValidationError(
                f"{path}.secret: secret {reference.value!r} is not set: define the environment variable"
                f" {secret_env_name(reference.value)} on the server"
            )
    elif not isinstance(secret, str) or not secret:
        raise ValidationError(f"{path}.secret: expected a non-empty string or a Secret reference")
    elif not encodable(secret):
        raise ValidationError(f"{path}.secret: must be valid Unicode text")
    elif secret == MASK:
        raise ValidationError(
            f"{path}.secret: {MASK!r} is how GET shows a secret, not a secret: send the real one,"
            ' or refer to one with {"type": "Secret", "value": "NAME"}'
        )


def _check_cron(trigger_type: dict[str, Any], path: str) -> None:
    zone = trigger_type.get("timezone")
    if zone is not None and not isinstance(zone, str):
        raise ValidationError(f"{path}.timezone: expected a time zone name such as Europe/Paris")
    try:
        # Finding the next fire time proves the expression can fire at all.
        CronSchedule.parse(trigger_type["expression"], zone or "UTC").next_after(datetime.now(UTC))
    except CronError as exc:
        raise ValidationError(f"{path}.expression: {exc}") from None


def _check_event(trigger_type: dict[str, Any], path: str) -> None:
    if trigger_type["event_type"] not in EVENT_TYPES:
        raise ValidationError(
            f"{path}.event_type: unknown event type {trigger_type['event_type']!r} (known: {', '.join(EVENT_TYPES)})"
        )
    source = trigger_type.get("workflow_id")
    if source is not None and not isinstance(source, str):
        raise ValidationError(f"{path}.workflow_id: expected a string")


# The checks of each trigger type's own fields, run by the model's validation.
TRIGGER_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "Webhook": _check_webhook,
    "Cron": _check_cron,
    "Event": _check_event,
}
