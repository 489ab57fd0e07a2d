"""Webhook signatures: checking them, and remembering which were accepted so none is used twice.

Three schemes, chosen per trigger (``"signature"``):

- ``flowengine`` (the default): ``X-Flowengine-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
  of "<t>.<raw body>">``, as Stripe signs. The timestamp must lie within a tolerance of the
  server's clock, and a signature accepted once is refused afterwards, so a captured request
  cannot be replayed.
- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``. GitHub signs
  only the body; its ``X-GitHub-Delivery`` id is accepted once.
- ``body-sha256``: ``X-Flowengine-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, the
  older form, kept for senders that cannot sign a timestamp. Nothing stops a replay.

Every check raises SignatureError with the status and a message for the client: header values
are untrusted text (they may hold undecodable bytes), so nothing here assumes their shape.

SeenSignatures and SeenDeliveries are one process's memory of what was accepted; servers that
share a PostgreSQL database keep it there instead (runtime/pgreplay.py), with the same answers
(``already_accepted``, ``delivery_already_accepted``) and the expiry ``delivery_memory`` says.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections import OrderedDict

__all__ = [
    "SIGNATURE_HEADER",
    "GITHUB_SIGNATURE_HEADER",
    "GITHUB_EVENT_HEADER",
    "GITHUB_DELIVERY_HEADER",
    "SCHEMES",
    "DEFAULT_SCHEME",
    "SignatureError",
    "check_timestamped",
    "check_body_sha256",
    "check_github",
    "delivery_id",
    "SeenSignatures",
    "SeenDeliveries",
    "DELIVERY_MEMORY_S",
    "already_accepted",
    "delivery_already_accepted",
]

SIGNATURE_HEADER = "X-Flowengine-Signature"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
SCHEMES = ("flowengine", "github", "body-sha256")
DEFAULT_SCHEME = "flowengine"

_HEX_DIGEST_LENGTH = 64
_MAX_TIMESTAMP_DIGITS = 12  # up to the year 33658: longer is garbage, not a time
_MAX_DELIVERY_LENGTH = 200
# How long a shared database remembers a GitHub delivery id (one process remembers the last
# 100,000 instead): longer than GitHub offers to redeliver a delivery (3 days).
DELIVERY_MEMORY_S = 7 * 24 * 3600


class SignatureError(Exception):
    """A request the signature check refuses: ``status`` (400, 401 or 409) and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def already_accepted() -> SignatureError:
    """The answer to a timestamped signature accepted before (a replay)."""
    return SignatureError(409, f"this {SIGNATURE_HEADER} was already accepted: sign each request anew")


def delivery_already_accepted(delivery: str) -> SignatureError:
    """The answer to a GitHub delivery accepted before (a replay, or a manual redelivery)."""
    return SignatureError(
        409,
        f"delivery {delivery} was already accepted; to run it again, retry its execution"
        " (POST /api/executions/{id}/retry)",
    )


def _digest(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def _text(header: str | None, name: str, form: str) -> str:
    """The header's value, or a 401 when it is missing or is not printable ASCII (undecodable
    bytes arrive as surrogate escapes)."""
    if header is None or not header.strip():
        raise SignatureError(401, f"missing {name}: send {form}")
    if not header.isascii() or not header.isprintable():
        raise SignatureError(401, f"malformed {name}: send {form}")
    return header.strip()


def _hex(value: str) -> str | None:
    value = value.strip().lower()
    if len(value) != _HEX_DIGEST_LENGTH or any(c not in "0123456789abcdef" for c in value):
        return None
    return value


_TIMESTAMPED_FORM = 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>'


def check_timestamped(secret: bytes, body: bytes, header: str | None, now: float, tolerance: float) -> tuple[int, str]:
    """Check ``t=...,v1=...`` (several v1 entries allowed, as when a sender rotates secrets).
    Returns the timestamp and the matching digest, which identifies the request for the
    replay memory."""
    text = _text(header, SIGNATURE_HEADER, _TIMESTAMPED_FORM)
    if text.lower().startswith("sha256="):
        raise SignatureError(
            401,
            f"{SIGNATURE_HEADER}: this webhook wants a timestamped signature, {_TIMESTAMPED_FORM};"
            ' the body-only sha256= form is accepted only by triggers with "signature": "body-sha256"',
        )
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise SignatureError(401, f"malformed {SIGNATURE_HEADER}: send {_TIMESTAMPED_FORM}")
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            candidates.append(value)
        # Other schemes' entries (Stripe's v0, say) are ignored, as Stripe does.
    if len(timestamps) != 1 or not candidates:
        raise SignatureError(401, f"malformed {SIGNATURE_HEADER}: send {_TIMESTAMPED_FORM}")
    stamp = timestamps[0]
    if not stamp.isdigit() or len(stamp) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError(401, f"malformed {SIGNATURE_HEADER}: t must be a Unix time in whole seconds")
    timestamp = int(stamp)
    expected = _digest(secret, stamp.encode("ascii") + b"." + body)
    if not any(
        (given := _hex(candidate)) is not None and hmac.compare_digest(given, expected) for candidate in candidates
    ):
        raise SignatureError(401, f"wrong {SIGNATURE_HEADER}: send {_TIMESTAMPED_FORM}")
    # Checked after the signature, so that only a genuine sender learns about its clock.
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            401,
            f"{SIGNATURE_HEADER}: t={timestamp} is more than {tolerance:g} s from the server's time ({int(now)});"
            " sign each request when it is sent",
        )
    return timestamp, expected


def check_body_sha256(secret: bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Flowengine-Signature: sha256=<hex>`` over the body alone."""
    _check_body_only(secret, body, header, SIGNATURE_HEADER)


def check_github(secret: bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` over the body alone."""
    _check_body_only(secret, body, header, GITHUB_SIGNATURE_HEADER)


def _check_body_only(secret: bytes, body: bytes, header: str | None, name: str) -> None:
    form = "sha256=<hex HMAC-SHA256 of the raw body with the secret>"
    text = _text(header, name, form)
    scheme, sep, value = text.partition("=")
    given = _hex(value) if sep and scheme.strip().lower() == "sha256" else None
    if given is None:
        raise SignatureError(401, f"malformed {name}: send {form}")
    if not hmac.compare_digest(given, _digest(secret, body)):
        raise SignatureError(401, f"wrong {name}: send {form}")


def delivery_id(header: str | None) -> str:
    """GitHub's delivery id, which a GitHub-signed request must carry (400 otherwise)."""
    if header is None or not header.strip():
        raise SignatureError(400, f"missing {GITHUB_DELIVERY_HEADER}: GitHub sends one with every delivery")
    text = header.strip()
    if not text.isascii() or not text.isprintable() or len(text) > _MAX_DELIVERY_LENGTH:
        raise SignatureError(400, f"malformed {GITHUB_DELIVERY_HEADER}")
    return text


class SeenSignatures:
    """Timestamped signatures accepted within the tolerance, so each is accepted once.

    A signature older than the tolerance is refused by its timestamp anyway, so it is forgotten.
    The memory is bounded: when it is full the oldest entry goes, and from then on nothing
    signed at or before that entry's time is accepted. Memory never lets a replay through; a
    flood of genuine requests at most narrows the tolerance for a while.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._expiry: dict[str, int] = {}  # digest -> timestamp
        self._by_time: list[tuple[int, str]] = []  # a heap of (timestamp, digest)
        self._floor = -1  # nothing signed at or before this time is accepted

    def __len__(self) -> int:
        return len(self._expiry)

    def accept(self, digest: str, timestamp: int, now: float, tolerance: float) -> None:
        """Remember the signature, or raise SignatureError 409 if it was accepted before."""
        self._forget_expired(now, tolerance)
        if digest in self._expiry:
            raise already_accepted()
        if timestamp <= self._floor:
            raise SignatureError(
                401, f"{SIGNATURE_HEADER}: t={timestamp} is too old for the server's replay memory; sign the request anew"
            )
        while len(self._expiry) >= self.limit:
            oldest, gone = heapq.heappop(self._by_time)
            if self._expiry.pop(gone, None) is not None:
                self._floor = max(self._floor, oldest)
        self._expiry[digest] = timestamp
        heapq.heappush(self._by_time, (timestamp, digest))

    def forget(self, digest: str) -> None:
        """The request was refused after all (its execution could not start): it may be sent again."""
        self._expiry.pop(digest, None)

    def _forget_expired(self, now: float, tolerance: float) -> None:
        while self._by_time and self._by_time[0][0] + tolerance < now:
            stamp, digest = heapq.heappop(self._by_time)
            if self._expiry.get(digest) == stamp:
                del self._expiry[digest]


class SeenDeliveries:
    """GitHub delivery ids already accepted, per webhook, the most recent ``limit`` of them."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def accept(self, hook: str, delivery: str) -> None:
        """Remember the delivery, or raise SignatureError 409 if it was accepted before."""
        key = (hook, delivery)
        if key in self._seen:
            raise delivery_already_accepted(delivery)
        self._seen[key] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def forget(self, hook: str, delivery: str) -> None:
        """Its execution could not start: a redelivery may try again."""
        self._seen.pop((hook, delivery), None)
