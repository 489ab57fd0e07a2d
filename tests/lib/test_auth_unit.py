"""Unit tests for flowengine.lib.auth: API keys, HS256 JWT verification, scopes, leeway.

Every refusal is checked for its status and that the message never contains the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from flowengine.lib.auth import (
    SCOPES,
    Authenticator,
    AuthError,
    Principal,
    bearer_token,
    make_jwt,
    parse_api_keys,
)

from support.clock import FakeClock
from support.tokens import b64url, hs_token

SECRET = "s3cret-for-tests-only-0123456789abcdef"
NOW = 1_800_000_000.0


def forge(header: dict, claims: dict, secret: str = SECRET, signature: str | None = None) -> str:
    """A token with an arbitrary header, signed with HS256 over whatever the header says."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    if signature is None:
        mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        signature = b64url(mac)
    return f"{head}.{body}.{signature}"


def jwt_auth(**kwargs) -> Authenticator:
    return Authenticator({}, SECRET, clock=kwargs.pop("clock", FakeClock(NOW)), **kwargs)


def refused(auth: Authenticator, token: str | None, status: int = 401) -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.authenticate(token)
    err = info.value
    assert err.status == status
    assert str(err) == err.message
    if token:
        assert token not in err.message and token not in repr(err)
        for part in token.split("."):
            # No segment of the token (header, claims, signature) is echoed either.
            assert len(part) < 8 or part not in err.message
    return err


# ---- JWT -----------------------------------------------------------------------------------


def test_valid_jwt_gives_subject_and_scope():
    token = make_jwt(SECRET, {"sub": "ci-bot", "scope": "execute", "exp": NOW + 60})
    principal = jwt_auth().authenticate(token)
    assert principal == Principal("ci-bot", "execute", "jwt")


def test_make_jwt_is_standard_hs256():
    token = make_jwt(SECRET, {"sub": "x"})
    head, body, sig = token.split(".")
    assert "=" not in token
    assert json.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": "HS256", "typ": "JWT"}
    expected = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)) == expected


def test_subject_defaults_to_jwt():
    assert jwt_auth().authenticate(make_jwt(SECRET, {"scope": "read"})).subject == "jwt"


def test_expired_jwt_refused():
    clock = FakeClock(NOW)
    auth = jwt_auth(clock=clock, leeway_s=30)
    token = make_jwt(SECRET, {"scope": "read", "exp": NOW - 31})
    assert "expired" in refused(auth, token).message


def test_not_yet_valid_jwt_refused():
    auth = jwt_auth(leeway_s=30)
    token = make_jwt(SECRET, {"scope": "read", "nbf": NOW + 31})
    assert "not valid yet" in refused(auth, token).message


def test_leeway_accepts_small_clock_skew_both_ways():
    clock = FakeClock(NOW)
    auth = jwt_auth(clock=clock, leeway_s=30)
    expired_recently = make_jwt(SECRET, {"scope": "read", "exp": NOW - 29})
    starts_soon = make_jwt(SECRET, {"scope": "read", "nbf": NOW + 29})
    assert auth.authenticate(expired_recently).scope == "read"
    assert auth.authenticate(starts_soon).scope == "read"
    # The same tokens fall outside a tighter leeway, and outside 30 s once time moves on.
    strict = jwt_auth(clock=clock, leeway_s=0)
    refused(strict, expired_recently)
    refused(strict, starts_soon)
    clock.now += 2
    refused(auth, expired_recently)
    assert auth.authenticate(starts_soon).scope == "read"


def test_exp_boundary_is_exclusive():
    token = make_jwt(SECRET, {"scope": "read", "exp": NOW})
    refused(jwt_auth(leeway_s=0), token)
    assert jwt_auth(clock=FakeClock(NOW - 0.001), leeway_s=0).authenticate(token)


def test_wrong_signature_refused():
    auth = jwt_auth()
    other = make_jwt("another-secret", {"scope": "admin"})
    assert "signature" in refused(auth, other).message
    # Flip the payload of a good token while keeping its signature: refused too.
    good = make_jwt(SECRET, {"sub": "a", "scope": "read"})
    head, _, sig = good.split(".")
    tampered = f"{head}.{b64url(json.dumps({'sub': 'a', 'scope': 'admin'}).encode())}.{sig}"
    assert "signature" in refused(auth, tampered).message


def test_alg_none_refused_even_without_signature():
    auth = jwt_auth()
    unsigned = forge({"alg": "none", "typ": "JWT"}, {"scope": "admin"}, signature="")
    assert "algorithm" in refused(auth, unsigned).message
    for spelling in ("None", "NONE", "nOnE"):
        refused(auth, forge({"alg": spelling}, {"scope": "admin"}, signature=""))


@pytest.mark.parametrize("header", [
    {"alg": "HS512", "typ": "JWT"},
    {"alg": "HS384"},
    {"alg": "RS256"},
    {"alg": "hs256"},
    {"alg": "HS256 "},
    {"alg": ["HS256"]},
    {"typ": "JWT"},
])
def test_other_algorithms_refused(header):
    # Signed with the right secret using HS256, so only the header's alg makes it wrong.
    err = refused(jwt_auth(), forge(header, {"scope": "admin"}))
    assert "algorithm" in err.message and "HS256" in err.message


def test_crit_header_refused():
    refused(jwt_auth(), forge({"alg": "HS256", "crit": ["exp"]}, {"scope": "read"}))


@pytest.mark.parametrize("token", [
    "a.b",
    "a.b.c.d",
    "....",
    "!!!.@@@.###",
    "e30.e30.",  # {} header: no alg
    "bm90IGpzb24.e30.AAAA",  # header is not JSON
    "W10.e30.AAAA",  # header is a JSON array
])
def test_malformed_tokens_refused(token):
    refused(jwt_auth(), token)


def test_padded_or_noncanonical_base64_refused():
    auth = jwt_auth()
    good = make_jwt(SECRET, {"sub": "x", "scope": "read"})
    head, body, sig = good.split(".")
    assert auth.authenticate(good)
    refused(auth, f"{head}.{body}.{sig}=")  # padding
    refused(auth, f"{head}.{body}.{sig[:-1]}+")  # standard alphabet, not base64url
    refused(auth, f"{head}.{body}.{sig[:-1]}")  # truncated
    # Same bytes, different trailing bits: a 32-byte signature ends in a char carrying 2 spare bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    respelled = sig[:-1] + alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(respelled + "=") == base64.urlsafe_b64decode(sig + "=")
    assert "canonical" in refused(auth, f"{head}.{body}.{respelled}").message


def test_payload_must_be_object_and_claims_well_typed():
    auth = jwt_auth()
    refused(auth, forge({"alg": "HS256"}, ["not", "an", "object"]))  # type: ignore[arg-type]
    refused(auth, make_jwt(SECRET, {"scope": "read", "exp": "tomorrow"}))
    refused(auth, make_jwt(SECRET, {"scope": "read", "exp": True}))
    refused(auth, make_jwt(SECRET, {"scope": "read", "sub": 42}))
    refused(auth, make_jwt(SECRET, {"scope": 7}))


@pytest.mark.parametrize(("scope", "expected"), [
    ("read", "read"),
    ("execute", "execute"),
    ("admin", "admin"),
    ("read execute", "execute"),
    ("admin read", "admin"),
    ("openid profile read", "read"),
    ("  execute   unknown ", "execute"),
    (["read", "admin"], "admin"),
])
def test_scope_claim_takes_highest_known(scope, expected):
    assert jwt_auth().authenticate(make_jwt(SECRET, {"scope": scope})).scope == expected


@pytest.mark.parametrize("claims", [{}, {"scope": ""}, {"scope": "openid profile"}, {"scope": "ADMIN"}])
def test_genuine_token_without_known_scope_is_forbidden(claims):
    assert "scope" in refused(jwt_auth(), make_jwt(SECRET, claims), status=403).message


def test_jwt_not_accepted_when_only_api_keys_configured():
    auth = Authenticator({"k" * 32: "admin"}, None)
    refused(auth, make_jwt(SECRET, {"scope": "admin"}))


def test_oversized_token_refused():
    token = make_jwt(SECRET, {"scope": "read", "pad": "x" * 10_000})
    assert "too long" in refused(jwt_auth(), token).message


# ---- API keys -------------------------------------------------------------------------------


KEY_READ = "rk_0123456789abcdef0123456789"
KEY_ADMIN = "ak_fedcba9876543210fedcba9876"


def key_auth() -> Authenticator:
    return Authenticator({KEY_READ: "read", KEY_ADMIN: "admin"}, None)


def test_api_keys_map_to_their_scope():
    auth = key_auth()
    reader = auth.authenticate(KEY_READ)
    admin = auth.authenticate(KEY_ADMIN)
    assert (reader.scope, reader.kind) == ("read", "api_key")
    assert (admin.scope, admin.kind) == ("admin", "api_key")
    # The subject is a stable fingerprint, never the key.
    assert reader.subject == auth.authenticate(KEY_READ).subject != admin.subject
    assert KEY_READ not in reader.subject and KEY_READ not in repr(reader)


@pytest.mark.parametrize("token", [KEY_READ[:-1], KEY_READ + "x", KEY_READ.upper(), " " + KEY_READ, "ünïcode-key"])
def test_wrong_api_keys_refused(token):
    refused(key_auth(), token)


def test_missing_token_refused():
    for token in (None, ""):
        assert "missing" in refused(key_auth(), token).message


def test_keys_and_jwt_together():
    auth = Authenticator({KEY_READ: "read"}, SECRET, clock=FakeClock(NOW))
    assert auth.authenticate(KEY_READ).kind == "api_key"
    assert auth.authenticate(make_jwt(SECRET, {"sub": "u", "scope": "admin"})).kind == "jwt"
    refused(auth, "not-a-key")


def test_disabled_authenticator_lets_everyone_in_as_anonymous_admin():
    auth = Authenticator({}, None)
    assert auth.enabled is False
    assert auth.authenticate(None) == Principal("anonymous", "admin", "anonymous")
    assert Authenticator({}, "").enabled is False
    assert Authenticator({KEY_READ: "read"}, None).enabled is True
    assert Authenticator({}, SECRET).enabled is True


def test_repr_hides_secrets():
    auth = Authenticator({KEY_READ: "read"}, SECRET)
    assert KEY_READ not in repr(auth) and SECRET not in repr(auth)


def test_principal_allows_by_rank():
    assert SCOPES == ("read", "execute", "admin")
    table = {
        "read": {"read"},
        "execute": {"read", "execute"},
        "admin": {"read", "execute", "admin"},
    }
    for scope, allowed in table.items():
        principal = Principal("s", scope, "jwt")
        assert {needed for needed in SCOPES if principal.allows(needed)} == allowed
    with pytest.raises(ValueError):
        Principal("s", "admin", "jwt").allows("root")


# ---- parse_api_keys / bearer_token ----------------------------------------------------------


def test_parse_api_keys():
    assert parse_api_keys("") == {}
    assert parse_api_keys("   ") == {}
    assert parse_api_keys("key1:read,key2:admin") == {"key1": "read", "key2": "admin"}
    assert parse_api_keys(" key1 : Execute , key2:admin ") == {"key1": "execute", "key2": "admin"}
    # The scope is after the last colon, so keys may contain colons.
    assert parse_api_keys("a:b:c:read") == {"a:b:c": "read"}


@pytest.mark.parametrize(("text", "fragment"), [
    ("supersecretkey123", "entry 1 (supe…) has no scope"),
    ("goodkey1:read,supersecretkey123:root", "entry 2 (supe…): unknown scope 'root'"),
    ("goodkey1:read,,x:read", "entry 2 is empty"),
    (":read", "empty key"),
    ("supersecretkey123:read,supersecretkey123:admin", "entry 2 (supe…): the same key is listed twice"),
    ("super secret:read", "must not contain spaces"),
])
def test_parse_api_keys_errors_name_entry_without_leaking_key(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_api_keys(text)
    message = str(info.value)
    assert fragment in message
    assert "supersecretkey123" not in message and "supersecret" not in message


def test_parse_api_keys_hint_is_shorter_for_short_keys():
    with pytest.raises(ValueError) as info:
        parse_api_keys("abcd:root")
    assert "abcd" not in str(info.value) and "(ab…)" in str(info.value)


def test_authenticator_rejects_unknown_scope_in_key_table():
    with pytest.raises(ValueError) as info:
        Authenticator({"supersecretkey123": "root"}, None)
    assert "supersecretkey123" not in str(info.value)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc.def", "abc.def"),
    ("bearer   abc", "abc"),
    ("BEARER abc", "abc"),
    ("Basic dXNlcjpwYXNz", None),
    ("Bearer", None),
    ("Bearer   ", None),
    ("", None),
    (None, None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_every_api_key_is_compared_whichever_matches(monkeypatch):
    # Constant time means no early exit: the number of comparisons must not depend on which
    # key (if any) matched. Counted by wrapping the comparison, not by timing.
    import flowengine.lib.auth as auth_module

    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
    keys = {f"key-{n:02d}-0123456789abcdef": "read" for n in range(10)}
    auth = Authenticator(keys, None)
    for token in (next(iter(keys)), list(keys)[5], list(keys)[-1], "no-such-key"):
        calls.clear()
        try:
            auth.authenticate(token)
        except AuthError:
            pass
        assert len(calls) == len(keys)


# ---- bounded parsing and strict claims ------------------------------------------------------


def test_deeply_nested_header_is_refused_without_recursion_error():
    # The attacker's header: ~1,200 levels, no secret needed since the header is read first.
    deep = '{"alg":"HS256","x":' + "[" * 1200 + "]" * 1200 + "}"
    with pytest.raises(RecursionError):
        json.loads(deep)  # what an unbounded verifier runs into
    token = f"{b64url(deep.encode())}.e30.{b64url(b'x' * 32)}"
    assert len(token) < 8192
    assert "header" in refused(jwt_auth(), token).message


def test_nesting_is_checked_even_within_the_header_size_bound():
    nested = '{"alg":"HS256","x":' + "[" * 40 + "]" * 40 + "}"
    assert len(nested) < 1024
    assert "nested more than 32" in refused(jwt_auth(), hs_token(nested, "{}", SECRET)).message
    # Brackets inside strings are text, not nesting.
    flat = '{"alg":"HS256","x":"' + "[" * 200 + '"}'
    assert jwt_auth().authenticate(hs_token(flat, '{"scope":"read"}', SECRET)).scope == "read"


def test_deep_payload_is_refused_after_the_signature():
    payload = '{"scope":"read","x":' + "[" * 1500 + "]" * 1500 + "}"
    with pytest.raises(RecursionError):
        json.loads(payload)
    assert "payload" in refused(jwt_auth(), hs_token('{"alg":"HS256"}', payload, SECRET)).message
    # 32 levels is the documented limit: the claim set itself is level 1.
    ok = '{"scope":"read","x":' + "[" * 31 + "]" * 31 + "}"
    assert jwt_auth().authenticate(hs_token('{"alg":"HS256"}', ok, SECRET)).scope == "read"
    too_deep = '{"scope":"read","x":' + "[" * 32 + "]" * 32 + "}"
    refused(jwt_auth(), hs_token('{"alg":"HS256"}', too_deep, SECRET))


def test_oversized_header_refused():
    header = json.dumps({"alg": "HS256", "pad": "x" * 1100})
    assert "header is longer than 1024 bytes" in refused(jwt_auth(), hs_token(header, "{}", SECRET)).message


@pytest.mark.parametrize("header_json", [
    '{"alg":"none","alg":"HS256"}',  # a parser keeping the first would see "none"
    '{"alg":"HS256","alg":"HS256"}',
])
def test_duplicate_header_members_refused(header_json):
    refused(jwt_auth(), hs_token(header_json, '{"scope":"read"}', SECRET))


def test_duplicate_claims_refused():
    refused(jwt_auth(), hs_token('{"alg":"HS256"}', '{"scope":"read","scope":"admin"}', SECRET))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_refused(literal):
    refused(jwt_auth(), hs_token('{"alg":"HS256"}', '{"scope":"read","exp":' + literal + "}", SECRET))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("literal", ["1" + "0" * 400, "-1" + "0" * 400, "1e400", "253402300800", "-62135596801"])
def test_numeric_dates_beyond_range_are_401(claim, literal):
    token = hs_token('{"alg":"HS256"}', '{"scope":"read","' + claim + '":' + literal + "}", SECRET)
    assert "out of range" in refused(jwt_auth(), token).message


def test_numeric_dates_at_the_range_edges_are_dates():
    auth = jwt_auth()
    assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "exp": 253402300799})).scope == "read"
    assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "nbf": -62135596800})).scope == "read"
    assert "expired" in refused(auth, make_jwt(SECRET, {"scope": "read", "exp": -62135596800})).message


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [None, "1800000000", True, False, [1], {"t": 1}])
def test_numeric_dates_must_be_numbers(claim, value):
    # null in particular: an explicit null is a malformed claim, not an absent one.
    err = refused(jwt_auth(), make_jwt(SECRET, {"scope": "read", claim: value}))
    assert f"'{claim}' must be a number" in err.message


def test_iat_in_the_future_beyond_leeway_refused():
    auth = jwt_auth(leeway_s=30)
    assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "iat": NOW + 30})).scope == "read"
    assert "issued in the future" in refused(auth, make_jwt(SECRET, {"scope": "read", "iat": NOW + 31})).message
    assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "iat": NOW - 86400})).scope == "read"


@pytest.mark.parametrize("value", [None, 42, ["a"], {"a": 1}, True])
def test_jti_must_be_a_string(value):
    assert "'jti' must be a string" in refused(jwt_auth(), make_jwt(SECRET, {"scope": "read", "jti": value})).message


def test_jti_string_accepted():
    assert jwt_auth().authenticate(make_jwt(SECRET, {"scope": "read", "jti": "abc-1"})).scope == "read"


@pytest.mark.parametrize("value", [None, 7, ["k"]])
def test_kid_must_be_a_string(value):
    token = forge({"alg": "HS256", "kid": value}, {"scope": "read"})
    assert "'kid' must be a string" in refused(jwt_auth(), token).message
    assert jwt_auth().authenticate(forge({"alg": "HS256", "kid": "k1"}, {"scope": "read"})).scope == "read"


@pytest.mark.parametrize("value", [None, "", 42, ["a"]])
def test_sub_must_be_a_non_empty_string(value):
    assert "'sub'" in refused(jwt_auth(), make_jwt(SECRET, {"scope": "read", "sub": value})).message


@pytest.mark.parametrize("aud", ["flowengine", ["flowengine"], [], "", None, 1])
def test_any_aud_claim_refused_without_configured_audience(aud):
    err = refused(jwt_auth(), make_jwt(SECRET, {"scope": "read", "aud": aud}))
    assert "FLOWENGINE_JWT_AUDIENCE is not set" in err.message


def test_configured_audience_must_be_named():
    auth = jwt_auth(audience="flowengine, https://flow.example")
    for aud in ("flowengine", "https://flow.example", ["other", "flowengine"]):
        assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "aud": aud})).scope == "read"
    assert "does not name" in refused(auth, make_jwt(SECRET, {"scope": "read", "aud": "other"})).message
    assert "does not name" in refused(auth, make_jwt(SECRET, {"scope": "read", "aud": []})).message
    assert "missing" in refused(auth, make_jwt(SECRET, {"scope": "read"})).message
    assert "list of strings" in refused(auth, make_jwt(SECRET, {"scope": "read", "aud": ["flowengine", 1]})).message
    assert "list of strings" in refused(auth, make_jwt(SECRET, {"scope": "read", "aud": None})).message


def test_parse_audiences():
    from flowengine.lib.auth import parse_audiences

    assert parse_audiences("") == ()
    assert parse_audiences(" a , b ,") == ("a", "b")


@pytest.mark.parametrize("token", ["abc\udcff", "\udcc3\udca9", "eyJh.e30.\udcff"])
def test_undecodable_header_bytes_are_401(token):
    # aiohttp passes header bytes that are not UTF-8 on as lone surrogates.
    for auth in (jwt_auth(), key_auth(), Authenticator({KEY_READ: "read"}, SECRET)):
        assert "not valid UTF-8" in refused(auth, token).message


@pytest.mark.parametrize("payload", ["é30", "e30\u00a0", "e30!"])
def test_non_base64url_payload_refused_before_signing_input_is_built(payload):
    head = b64url(b'{"alg":"HS256"}')
    refused(jwt_auth(), f"{head}.{payload}.{b64url(b'x' * 32)}")


def test_jwt_audience_setting():
    from flowengine.config import load_config

    assert load_config({}).jwt_audience == ()
    assert load_config({"FLOWENGINE_JWT_AUDIENCE": "flowengine, https://flow.example"}).jwt_audience == (
        "flowengine", "https://flow.example")
    auth = Authenticator({}, SECRET, clock=FakeClock(NOW), audience=load_config(
        {"FLOWENGINE_JWT_AUDIENCE": "flowengine"}).jwt_audience)
    assert auth.authenticate(make_jwt(SECRET, {"scope": "read", "aud": "flowengine"})).scope == "read"
