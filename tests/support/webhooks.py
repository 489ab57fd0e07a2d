"""Signing webhook requests the way a sender would (no tests of its own): written from the
documented formats with hmac, not with flowengine's own code, so the tests check one against
the other."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """An ``X-Flowengine-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def body_signature(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``: GitHub's X-Hub-Signature-256, and the older
    body-only X-Flowengine-Signature."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
