"""flowengine's HS256 verifier (flowengine/lib/auth.py) against PyJWT, the library it stands in for.

Tokens made by PyJWT are accepted by flowengine exactly when PyJWT's own ``jwt.decode``
accepts them, with the same secret, clock and leeway; flowengine's ``make_jwt`` tokens decode
in PyJWT. Where the two deliberately differ, a test names the difference and asserts both
verdicts:

- EMPTY_AUD: with no audience configured, PyJWT lets an empty ``aud`` ("" / [] / null) pass;
  flowengine refuses any ``aud`` claim (RFC 7519 section 4.1.3).
- NON_NUMBER_DATES: PyJWT runs ``int()`` on exp/nbf/iat, so ``"1800000000"`` and ``true`` pass;
  flowengine wants a JSON number (RFC 7519 section 2, NumericDate).
- FRACTIONAL_DATES: PyJWT truncates a fractional date before comparing; flowengine compares
  the exact value.
- HUGE_DATES: PyJWT accepts ``exp`` of 10**400 (never expires); flowengine refuses dates beyond
  the year 9999.
- EMPTY_SUB: PyJWT accepts ``"sub": ""``; flowengine needs a subject to name the caller.
- DUPLICATE_MEMBERS: PyJWT keeps the last of duplicate members; flowengine refuses the token.
- LENIENT_BASE64: PyJWT decodes padded or non-canonical base64url; flowengine refuses it.
- DEEP_NESTING: PyJWT refuses a deeply nested payload only where Python's recursion limit
  stops it; flowengine refuses more than 32 levels before decoding.
"""

from __future__ import annotations

import base64
import datetime as real_datetime
import hashlib
import json
import random

import jwt as pyjwt
import pytest

from flowengine.lib.auth import Authenticator, AuthError, make_jwt

from support.tokens import hs_token

# 64 bytes: PyJWT warns about shorter keys for HS512, and warnings are errors in this suite.
SECRET = "oracle-secret-0123456789abcdefghijklmnop-0123456789abcdefghijklm"
OTHER_SECRET = "another-secret-0123456789abcdefghijklmno-0123456789abcdefghijklm"
NOW = 1_800_000_000
LEEWAY = 30


class _FrozenDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return real_datetime.datetime.fromtimestamp(NOW, tz)


@pytest.fixture(autouse=True)
def frozen_pyjwt_clock(monkeypatch):
    """PyJWT reads the time with datetime.now(); give it the same clock as our Authenticator."""
    import jwt.api_jwt

    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime)


def ours_accepts(token: str, audience: str | None = None) -> bool:
    auth = Authenticator({}, SECRET, leeway_s=LEEWAY, clock=lambda: NOW, audience=audience)
    try:
        auth.authenticate(token)
    except AuthError as exc:
        assert exc.status == 401, exc
        return False
    return True


def pyjwt_accepts(token: str, audience: str | None = None) -> bool:
    try:
        pyjwt.decode(token, SECRET, algorithms=["HS256"], leeway=LEEWAY, audience=audience)
    except pyjwt.PyJWTError:
        return False
    return True


_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _date(rng: random.Random, name: str):
    roll = rng.random()
    if roll < 0.04:
        return None
    if roll < 0.5:
        # Around both edges of the leeway window.
        value = NOW + rng.choice([-LEEWAY, LEEWAY]) + rng.randint(-2, 2)
    else:
        # Mostly on the valid side: exp in the future, nbf and iat in the past.
        value = NOW + (rng.randint(-1000, 9000) if name == "exp" else rng.randint(-9000, 1000))
    return float(value) if rng.random() < 0.2 else value  # integral floats read the same


def _claims(rng: random.Random, audience: str | None) -> dict:
    claims: dict = {"scope": "read"}
    for name in ("exp", "nbf", "iat"):
        if rng.random() < 0.5:
            claims[name] = _date(rng, name)
    if rng.random() < 0.5:
        claims["sub"] = rng.choice(["ci", "user-1", "ci", "user-2", "bot", 42, None, ["x"]])
    if rng.random() < 0.3:
        claims["jti"] = rng.choice(["id-1", "id-2", "id-3", 7, None])
    if rng.random() < (0.2 if audience is None else 0.95):
        if audience is None:
            claims["aud"] = rng.choice(["flow", ["flow"], ["a", "b"]])  # non-empty: see EMPTY_AUD
        else:
            claims["aud"] = rng.choice(["flow"] * 5 + [["x", "flow"]] * 2 + ["other", ["other"], [], "", [1], None])
    if rng.random() < 0.3:
        claims["custom"] = {"nested": [1, 2, {"deep": True}]}
    return claims


@pytest.mark.parametrize("audience", [None, "flow"])
def test_pyjwt_tokens_accepted_exactly_when_pyjwt_accepts_them(audience):
    rng = random.Random(f"jwt-oracle-{audience}")
    verdicts = {True: 0, False: 0}
    for _ in range(600):
        claims = _claims(rng, audience)
        headers = {}
        if rng.random() < 0.2:
            headers["kid"] = rng.choice(["key-1", 5, None])
        algorithm = rng.choice(["HS256"] * 10 + ["HS384", "HS512"])
        secret = SECRET if rng.random() < 0.9 else OTHER_SECRET
        try:
            token = pyjwt.encode(claims, secret, algorithm=algorithm, headers=headers or None)
        except pyjwt.PyJWTError:
            # PyJWT will not write a non-string kid; spell that token by hand for both to read.
            token = hs_token(json.dumps({"alg": algorithm, "typ": "JWT", **headers}), json.dumps(claims),
                             secret, digest=_DIGESTS[algorithm])
        expected = pyjwt_accepts(token, audience)
        assert ours_accepts(token, audience) == expected, (claims, headers, algorithm, secret == SECRET)
        verdicts[expected] += 1
    # Both verdicts in quantity, so the comparison means something.
    assert verdicts[True] > 80 and verdicts[False] > 80, verdicts


def test_make_jwt_tokens_decode_in_pyjwt():
    rng = random.Random("make-jwt")
    for _ in range(100):
        claims = {"sub": f"user-{rng.randrange(1000)}", "scope": rng.choice(["read", "execute admin"]),
                  "exp": NOW + rng.randint(1, 10**6), "note": "ü ✓ \"quoted\""}
        token = make_jwt(SECRET, claims)
        assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
        assert pyjwt.decode(token, SECRET, algorithms=["HS256"]) == claims
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(make_jwt(OTHER_SECRET, {"scope": "read"}), SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("aud", ["", [], None])
def test_empty_aud(aud):
    """EMPTY_AUD."""
    token = pyjwt.encode({"scope": "read", "aud": aud}, SECRET, algorithm="HS256")
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [str(NOW + 60), True])
def test_non_number_dates(claim, value):
    """NON_NUMBER_DATES: values PyJWT turns into a date with int()."""
    if claim == "exp" and value is True:
        value = str(NOW + 120)  # exp: true is int 1, long expired, so PyJWT refuses it too
    if claim != "exp" and isinstance(value, str):
        value = str(NOW - 60)  # a string date in the past: valid for nbf/iat
    token = pyjwt.encode({"scope": "read", claim: value}, SECRET, algorithm="HS256")
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False


def test_fractional_dates():
    """FRACTIONAL_DATES: exp 29.5 s ago with 30 s leeway."""
    token = pyjwt.encode({"scope": "read", "exp": NOW - LEEWAY + 0.5}, SECRET, algorithm="HS256")
    assert pyjwt_accepts(token) is False  # int() made it exactly 30 s ago
    assert ours_accepts(token) is True


def test_huge_dates():
    """HUGE_DATES."""
    token = pyjwt.encode({"scope": "read", "exp": 10**400}, SECRET, algorithm="HS256")
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False


def test_empty_sub():
    """EMPTY_SUB."""
    token = pyjwt.encode({"scope": "read", "sub": ""}, SECRET, algorithm="HS256")
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False


def test_duplicate_members():
    """DUPLICATE_MEMBERS."""
    token = hs_token('{"alg":"HS256"}', '{"scope":"read","exp":1,"exp":' + str(NOW + 60) + "}", SECRET)
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False


def test_lenient_base64():
    """LENIENT_BASE64: a padded signature segment."""
    token = make_jwt(SECRET, {"scope": "read"})
    head, body, signature = token.split(".")
    padded = f"{head}.{body}.{signature}="
    assert pyjwt_accepts(padded) is True
    assert ours_accepts(padded) is False


def test_deep_nesting():
    """DEEP_NESTING: 100 levels decode in PyJWT; flowengine stops at 32."""
    token = hs_token('{"alg":"HS256"}', '{"scope":"read","x":' + "[" * 100 + "]" * 100 + "}", SECRET)
    assert pyjwt_accepts(token) is True
    assert ours_accepts(token) is False
    # Both refuse the attacker's depth, PyJWT by catching RecursionError after the fact.
    deep = hs_token('{"alg":"HS256"}', '{"scope":"read","x":' + "[" * 2000 + "]" * 2000 + "}", SECRET)
    assert pyjwt_accepts(deep) is False
    assert ours_accepts(deep) is False


def test_frozen_clock_is_what_pyjwt_sees():
    # Guard for the comparison above: PyJWT must read our NOW, or the boundary cases mean nothing.
    just_expired = pyjwt.encode({"scope": "read", "exp": NOW - LEEWAY}, SECRET, algorithm="HS256")
    just_valid = pyjwt.encode({"scope": "read", "exp": NOW - LEEWAY + 1}, SECRET, algorithm="HS256")
    assert (pyjwt_accepts(just_expired), pyjwt_accepts(just_valid)) == (False, True)
    assert (ours_accepts(just_expired), ours_accepts(just_valid)) == (False, True)
    assert json.loads(base64.urlsafe_b64decode(just_valid.split(".")[1] + "==")) == {"scope": "read", "exp": NOW - LEEWAY + 1}
