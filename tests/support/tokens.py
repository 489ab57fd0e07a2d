"""JWTs and Authorization headers spelled by hand (RFC 7515 with hmac, not flowengine's own
code), so that the tests can write tokens no library would issue: literal JSON text with
duplicate members, deep nesting, odd numbers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

__all__ = ["b64url", "bearer", "hs_token"]


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWT segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_token(header_json: str, payload_json: str, secret: str, digest: Any = hashlib.sha256) -> str:
    """A token from literal JSON text, signed with HMAC over ``head.body`` (HS256 unless
    ``digest`` says otherwise, whatever the header claims)."""
    head, body = b64url(header_json.encode()), b64url(payload_json.encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(mac)}"


def bearer(token: str) -> dict[str, str]:
    """Request headers carrying ``token`` (a JWT or an API key) as a bearer credential."""
    return {"Authorization": f"Bearer {token}"}
