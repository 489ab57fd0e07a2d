"""Authentication: API keys and HS256 JWTs, verified with the standard library only.

Off unless configured (``FLOWENGINE_API_KEYS`` and/or ``FLOWENGINE_JWT_SECRET``). This module
knows nothing about HTTP: the middleware pulls the bearer token out of the request, calls
:meth:`Authenticator.authenticate`, turns :class:`AuthError` into a JSON 401/403 and checks
:meth:`Principal.allows` against the scope the route needs.

Security notes, because they are the point of this module:

- API keys are compared with :func:`hmac.compare_digest` against *every* configured key, with
  no early exit, so the time taken does not reveal which key (or how much of one) matched.
- JWTs: ``alg`` must be exactly ``"HS256"``; ``none`` and every other algorithm are refused
  before any signature work. The signature is compared in constant time. Segments must be
  canonical base64url without padding, so one token has exactly one spelling.
- The header is read before the signature is checked, so anyone can make us parse it: its size
  and the nesting depth of both JSON segments are bounded *before* ``json.loads`` runs (a
  deeply nested document would otherwise exhaust the recursion limit), duplicate member names
  and the non-JSON constants ``NaN``/``Infinity`` are refused.
- Registered claims are type-checked (RFC 7519 section 4.1): ``exp``/``nbf``/``iat`` are JSON
  numbers inside the years 1-9999 (``null`` is an error, not "absent"), ``sub`` and ``jti`` are
  strings, the header's ``kid`` is a string. A token naming an audience (``aud``) is refused
  unless an audience is configured, and then it must name one of them.
- No message, ``repr`` or exception text ever contains a token or key; a principal made from an
  API key is named by a short hash of the key, never the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCOPES",
    "AuthError",
    "Authenticator",
    "Principal",
    "bearer_token",
    "make_jwt",
    "parse_api_keys",
    "parse_audiences",
]

# Ordered from least to most powerful: a scope allows everything the scopes before it allow.
SCOPES = ("read", "execute", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}

# A real token is a few hundred bytes; refusing huge ones bounds the work an attacker can cause.
_MAX_TOKEN_CHARS = 8192
# An HS256 header is tens of bytes ({"alg":"HS256","typ":"JWT","kid":...}); certificate-chain
# headers belong to algorithms this module refuses anyway.
_MAX_HEADER_BYTES = 1024
# Deep enough for any real claim set, far below the depth where json.loads recurses too far.
_MAX_JSON_DEPTH = 32
# NumericDate range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. Beyond it a number is no
# usable date (and 10**400 would overflow float arithmetic).
_MIN_NUMERIC_DATE = -62135596800
_MAX_NUMERIC_DATE = 253402300799
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class AuthError(Exception):
    """Credentials missing or bad (``status`` 401) or not enough scope (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"AuthError({self.status}, {self.message!r})"


@dataclass(frozen=True)
class Principal:
    """Who made a request: ``subject`` (JWT ``sub`` or an API key's fingerprint), ``scope``
    (one of :data:`SCOPES`) and ``kind`` (``"api_key"`` or ``"jwt"``; ``"anonymous"`` only when
    authentication is switched off)."""

    subject: str
    scope: str
    kind: str

    def allows(self, needed: str) -> bool:
        """True when this principal's scope is ``needed`` or a more powerful one."""
        try:
            return _RANK[self.scope] >= _RANK[needed]
        except KeyError:
            # An unknown scope name is a programming error in the route table, not a user error.
            raise ValueError(f"unknown scope {needed!r}; expected one of {', '.join(SCOPES)}") from None


def _hint(key: str) -> str:
    """At most the first 4 characters of a key (fewer for short keys), enough to find it in a
    config file without printing it."""
    return key[: min(4, len(key) // 2)] + "…"


def parse_api_keys(text: str) -> dict[str, str]:
    """Parse ``FLOWENGINE_API_KEYS``: ``"key1:read,key2:admin"`` -> ``{"key1": "read", ...}``.

    Blank text means no keys. Raises :class:`ValueError` naming the bad entry by position and
    by at most its first 4 characters.
    """
    keys: dict[str, str] = {}
    if not text.strip():
        return keys
    for number, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        where = f"entry {number}"
        if not entry:
            raise ValueError(f"{where} is empty; expected key:scope")
        # rpartition: the scope is the text after the last colon, so a key may contain colons.
        key, sep, scope = entry.rpartition(":")
        key, scope = key.strip(), scope.strip().lower()
        if not sep:
            raise ValueError(f"{where} ({_hint(entry)}) has no scope; expected key:scope")
        if not key:
            raise ValueError(f"{where} has an empty key; expected key:scope")
        where = f"{where} ({_hint(key)})"
        if any(ch.isspace() for ch in key) or not key.isprintable():
            raise ValueError(f"{where}: the key must not contain spaces or control characters")
        if scope not in _RANK:
            raise ValueError(f"{where}: unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
        if key in keys:
            raise ValueError(f"{where}: the same key is listed twice")
        keys[key] = scope
    return keys


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``.

    The scheme is case-insensitive (RFC 7235); anything other than Bearer gives ``None``.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str, what: str) -> bytes:
    # Strict: only the base64url alphabet, no padding, and canonical (re-encoding gives the
    # same text), so a token cannot be re-spelled with different trailing bits.
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise AuthError(401, f"malformed token: {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AuthError(401, f"malformed token: {what} is not base64url") from None
    if _b64url_encode(data) != segment:
        raise AuthError(401, f"malformed token: {what} is not canonical base64url")
    return data


def _nesting_depth(text: str, limit: int) -> int:
    """The deepest ``[``/``{`` nesting of JSON ``text``, counting up to ``limit + 1`` at most.

    Brackets inside strings do not count. Only meant as a bound before decoding: for text that
    is not JSON the answer is meaningless, and json.loads refuses that text anyway.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 section 5.2 lets a parser keep the last duplicate; refusing is safer, because
    # two parsers that disagree on which duplicate counts can be played against each other.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(401, f"malformed token: {what} is not UTF-8 JSON") from None
    # The count is a cheap upper bound on the depth: real tokens never need the scan.
    brackets = text.count("[") + text.count("{")
    if brackets > _MAX_JSON_DEPTH and _nesting_depth(text, _MAX_JSON_DEPTH) > _MAX_JSON_DEPTH:
        raise AuthError(401, f"malformed token: {what} is nested more than {_MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_members)
    except (ValueError, RecursionError):
        # RecursionError cannot happen below the depth bound; caught so that no future change
        # of that bound can turn a bad token into a 500.
        raise AuthError(401, f"malformed token: {what} is not JSON") from None
    if not isinstance(value, dict):
        raise AuthError(401, f"malformed token: {what} is not a JSON object")
    return value


def _sign(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def make_jwt(secret: str, claims: dict) -> str:
    """An HS256 JWT carrying ``claims``, e.g. ``make_jwt(s, {"sub": "ci", "scope": "execute",
    "exp": time.time() + 3600})``."""
    header = _b64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url_encode(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64url_encode(_sign(secret.encode('utf-8'), signing_input))}"


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """Claim ``name`` as seconds since the epoch; None only when the claim is absent."""
    if name not in claims:
        return None
    value = claims[name]
    # bool is an int subclass; true/false is not a date. null is not "absent" either.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuthError(401, f"invalid token: {name!r} must be a number of seconds")
    # Compared as the exact int or float it is: float(10**400) would raise OverflowError.
    if not (isinstance(value, int) or math.isfinite(value)) or not _MIN_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE:
        raise AuthError(401, f"invalid token: {name!r} is out of range (a date in the years 1 to 9999)")
    return float(value)


def _optional_string(claims: Mapping[str, Any], name: str, where: str) -> None:
    if name in claims and not isinstance(claims[name], str):
        raise AuthError(401, f"invalid token: {where} {name!r} must be a string")


def parse_audiences(text: str) -> tuple[str, ...]:
    """``FLOWENGINE_JWT_AUDIENCE``: one audience or a comma-separated list; blank means none."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _highest_scope(claim: Any) -> str:
    if isinstance(claim, str):
        names = claim.split()
    elif isinstance(claim, list) and all(isinstance(item, str) for item in claim):
        names = claim  # some issuers send a JSON array instead of a space-separated string
    elif claim is None:
        names = []
    else:
        raise AuthError(401, "invalid token: 'scope' must be a string")
    known = [name for name in names if name in _RANK]
    if not known:
        # The token is genuine but grants nothing this server knows: forbidden, not unknown.
        raise AuthError(403, f"token grants no known scope; expected one of {', '.join(SCOPES)}")
    return max(known, key=_RANK.__getitem__)


class Authenticator:
    """Checks bearer tokens against the configured API keys and JWT secret."""

    def __init__(
        self,
        api_keys: dict[str, str],
        jwt_secret: str | None,
        *,
        leeway_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        audience: str | tuple[str, ...] | None = None,
    ) -> None:
        for key, scope in api_keys.items():
            if scope not in _RANK:
                raise ValueError(f"API key {_hint(key)}: unknown scope {scope!r}")
        if leeway_s < 0:
            raise ValueError("leeway_s must not be negative")
        # Bytes once, up front: compare_digest on str only accepts ASCII.
        self._keys = [(key.encode("utf-8"), scope) for key, scope in api_keys.items()]
        self._secret = jwt_secret.encode("utf-8") if jwt_secret else None
        self._leeway = float(leeway_s)
        self._clock = clock
        # The audiences this server answers to; empty means tokens must not name any.
        self._audiences = frozenset(parse_audiences(audience) if isinstance(audience, str) else audience or ())
        self.enabled: bool = bool(self._keys) or self._secret is not None

    def __repr__(self) -> str:  # never show keys or the secret
        return f"<Authenticator keys={len(self._keys)} jwt={self._secret is not None}>"

    def authenticate(self, token: str | None) -> Principal:
        """The principal ``token`` stands for; raises :class:`AuthError` (401, or 403 for a
        genuine JWT without a known scope). With authentication off, everyone is an anonymous
        admin, so callers may call this unconditionally."""
        if not self.enabled:
            return Principal("anonymous", "admin", "anonymous")
        if not token:
            raise AuthError(401, "missing credentials: send Authorization: Bearer <token>")
        if len(token) > _MAX_TOKEN_CHARS:
            raise AuthError(401, "invalid credentials: token too long")
        try:
            # aiohttp hands undecodable header bytes over as lone surrogates (surrogateescape);
            # no key or token can contain them.
            token.encode("utf-8")
        except UnicodeEncodeError:
            raise AuthError(401, "invalid credentials: the token is not valid UTF-8") from None
        principal = self._api_key(token)
        if principal is not None:
            return principal
        if self._secret is not None and token.count(".") == 2:
            return self._jwt(token)
        raise AuthError(401, "invalid credentials")

    def _api_key(self, token: str) -> Principal | None:
        presented = token.encode("utf-8")
        found: tuple[bytes, str] | None = None
        for key, scope in self._keys:
            # No break: every key is compared so timing does not depend on which one matched.
            if hmac.compare_digest(presented, key):
                found = (key, scope)
        if found is None:
            return None
        # A stable, non-reversible name for logs and per-client rate limits.
        fingerprint = hashlib.sha256(found[0]).hexdigest()[:12]
        return Principal(f"key-{fingerprint}", found[1], "api_key")

    def _jwt(self, token: str) -> Principal:
        assert self._secret is not None
        header_b64, payload_b64, signature_b64 = token.split(".")
        for segment, what in ((header_b64, "header"), (payload_b64, "payload"), (signature_b64, "signature")):
            if not _B64URL.fullmatch(segment):
                raise AuthError(401, f"malformed token: {what} is not base64url")
        header_bytes = _b64url_decode(header_b64, "header")
        if len(header_bytes) > _MAX_HEADER_BYTES:
            raise AuthError(401, f"malformed token: header is longer than {_MAX_HEADER_BYTES} bytes")
        header = _json_object(header_bytes, "header")
        alg = header.get("alg")
        # Exactly "HS256": refusing everything else closes the alg=none and alg-confusion holes.
        if alg != "HS256":
            shown = repr(alg) if isinstance(alg, str) and len(alg) <= 16 else "missing or invalid"
            raise AuthError(401, f"invalid token: algorithm {shown} is not accepted; use HS256")
        if "crit" in header:
            raise AuthError(401, "invalid token: critical header extensions are not supported")
        _optional_string(header, "kid", "header")
        signature = _b64url_decode(signature_b64, "signature")
        expected = _sign(self._secret, f"{header_b64}.{payload_b64}".encode("ascii"))
        if not hmac.compare_digest(signature, expected):
            raise AuthError(401, "invalid token: bad signature")
        # Claims are only read once the signature proves who wrote them.
        claims = _json_object(_b64url_decode(payload_b64, "payload"), "payload")
        now = self._clock()
        exp = _numeric_date(claims, "exp")
        nbf = _numeric_date(claims, "nbf")
        iat = _numeric_date(claims, "iat")
        if exp is not None and now >= exp + self._leeway:
            raise AuthError(401, "invalid token: expired")
        if nbf is not None and now < nbf - self._leeway:
            raise AuthError(401, "invalid token: not valid yet")
        if iat is not None and now < iat - self._leeway:
            raise AuthError(401, "invalid token: issued in the future ('iat')")
        _optional_string(claims, "jti", "claim")
        self._check_audience(claims)
        subject = claims.get("sub", "jwt")
        if not isinstance(subject, str) or not subject:
            raise AuthError(401, "invalid token: 'sub' must be a non-empty string")
        return Principal(subject, _highest_scope(claims.get("scope")), "jwt")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        """RFC 7519 section 4.1.3: a token naming audiences is for one of them or refused."""
        if "aud" not in claims:
            if self._audiences:
                raise AuthError(401, "invalid token: 'aud' is missing and FLOWENGINE_JWT_AUDIENCE requires one")
            return
        if not self._audiences:
            raise AuthError(401, "invalid token: it names an audience ('aud') and FLOWENGINE_JWT_AUDIENCE is not set")
        named = claims["aud"]
        if isinstance(named, str):
            named = [named]
        if not isinstance(named, list) or not all(isinstance(item, str) for item in named):
            raise AuthError(401, "invalid token: 'aud' must be a string or a list of strings")
        if self._audiences.isdisjoint(named):
            raise AuthError(401, "invalid token: 'aud' does not name this server's audience")
