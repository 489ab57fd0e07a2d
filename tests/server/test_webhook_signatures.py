"""Signed webhooks: what the signature covers is all that becomes an input, a signed request is
accepted once, GitHub deliveries work as GitHub sends them, and garbage in the signature
headers is a JSON 401, never a 500."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from flowengine.lib.signatures import SeenSignatures, SignatureError

from support.api import node, register, webhook_workflow
from support.rawhttp import exchange
from support.webhooks import body_signature, sign

SECRET = b"hook-secret-1"


def _hooked(path: str = "pay", nodes: list | None = None, **trigger) -> dict:
    """A webhook workflow whose trigger checks signatures made with SECRET."""
    return webhook_workflow(path, nodes, secret=SECRET.decode(), **trigger)


async def _inputs(client, response) -> dict:
    body = await response.json()
    assert response.status in (200, 202), body
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    return record["inputs"]


async def test_a_signed_request_is_accepted_once(client):
    await register(client, _hooked())
    payload = b'{"to": "alice", "amount": 10}'
    headers = {"X-Flowengine-Signature": sign(SECRET, payload), "Content-Type": "application/json"}
    first = await client.post("/api/hooks/pay", data=payload, headers=headers)
    assert await _inputs(client, first) == {
        "to": {"type": "String", "value": "alice"},
        "amount": {"type": "Number", "value": 10},
    }
    replayed = await client.post("/api/hooks/pay", data=payload, headers=headers)
    assert replayed.status == 409
    assert "already accepted" in (await replayed.json())["error"]
    # The same body signed again (a new timestamp) is a new request.
    again = await client.post(
        "/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": sign(SECRET, payload, int(time.time()) - 1)}
    )
    assert again.status == 200, await again.text()
    executions = (await (await client.get("/api/executions")).json())["executions"]
    assert len(executions) == 2


async def test_empty_bodies_do_not_share_a_signature(client):
    await register(client, _hooked())
    now = int(time.time())
    first = await client.post("/api/hooks/pay", headers={"X-Flowengine-Signature": sign(SECRET, b"", now)})
    assert first.status == 200, await first.text()
    assert (await client.post("/api/hooks/pay", headers={"X-Flowengine-Signature": sign(SECRET, b"", now)})).status == 409
    later = await client.post("/api/hooks/pay", headers={"X-Flowengine-Signature": sign(SECRET, b"", now + 1)})
    assert later.status == 200, await later.text()


async def test_query_tampered_and_forged_headers_are_not_inputs(client):
    await register(client, _hooked())
    payload = b'{"to": "alice", "amount": 10}'
    signature = sign(SECRET, payload)
    tampered = await client.post(
        "/api/hooks/pay?amount=999999", data=payload, headers={"X-Flowengine-Signature": signature}
    )
    assert tampered.status == 400
    assert "not covered by the signature" in (await tampered.json())["error"]
    # The refused request did not use the signature up: the genuine one still goes through,
    # and a forged header does not reach the workflow.
    genuine = await client.post(
        "/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": signature, "X-Role": "admin"}
    )
    inputs = await _inputs(client, genuine)
    assert inputs["amount"] == {"type": "Number", "value": 10}
    assert "headers" not in inputs and "admin" not in json.dumps(inputs)
    # ?wait is not an input but how to answer: allowed.
    other = b'{"to": "bob"}'
    background = await client.post(
        "/api/hooks/pay?wait=false", data=other, headers={"X-Flowengine-Signature": sign(SECRET, other)}
    )
    assert background.status == 202


async def test_timestamps_outside_the_tolerance_are_refused(make_client):
    client = await make_client(webhook_tolerance_s=60)
    await register(client, _hooked())
    payload = b'{"to": "alice"}'
    now = int(time.time())
    for stamp in (now - 120, now + 120):
        response = await client.post(
            "/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": sign(SECRET, payload, stamp)}
        )
        assert response.status == 401
        assert "more than 60 s" in (await response.json())["error"]
    inside = await client.post(
        "/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": sign(SECRET, payload, now - 50)}
    )
    assert inside.status == 200, await inside.text()


async def test_rotated_secrets_may_send_several_v1_entries(client):
    await register(client, _hooked())
    payload = b'{"to": "alice"}'
    stamp, good = sign(SECRET, payload).split(",")
    header = f"{stamp},v1={'ab' * 32},{good},v0=ignored"
    assert (await client.post("/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": header})).status == 200


async def test_the_body_only_form_only_where_a_trigger_opts_in(client):
    await register(client, _hooked())
    payload = b'{"to": "alice"}'
    refused = await client.post(
        "/api/hooks/pay", data=payload, headers={"X-Flowengine-Signature": body_signature(SECRET, payload)}
    )
    assert refused.status == 401
    assert '"signature": "body-sha256"' in (await refused.json())["error"]

    await register(client, _hooked("legacy", signature="body-sha256"))
    headers = {"X-Flowengine-Signature": body_signature(SECRET, payload)}
    first = await client.post("/api/hooks/legacy", data=payload, headers=headers)
    assert await _inputs(client, first) == {"to": {"type": "String", "value": "alice"}}
    # Replayable, as documented: nothing in the body-only form tells two sends apart.
    assert (await client.post("/api/hooks/legacy", data=payload, headers=headers)).status == 200
    wrong = await client.post("/api/hooks/legacy", data=payload + b" ", headers=headers)
    assert wrong.status == 401
    timestamped = await client.post("/api/hooks/legacy", data=payload, headers={"X-Flowengine-Signature": sign(SECRET, payload)})
    assert timestamped.status == 401


def _github_headers(payload: bytes, delivery: str, event: str = "push") -> dict[str, str]:
    return {
        "X-Hub-Signature-256": body_signature(SECRET, payload),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
    }


async def test_a_github_delivery_is_accepted_once(client):
    await register(client, _hooked("github", signature="github"))
    payload = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}}).encode()
    delivery = str(uuid.uuid4())
    first = await client.post("/api/hooks/github", data=payload, headers=_github_headers(payload, delivery))
    assert await _inputs(client, first) == {
        "ref": {"type": "String", "value": "refs/heads/main"},
        "repository": {"type": "Json", "value": {"full_name": "acme/app"}},
        "github_event": {"type": "String", "value": "push"},
        "github_delivery": {"type": "String", "value": delivery},
    }
    redelivered = await client.post("/api/hooks/github", data=payload, headers=_github_headers(payload, delivery))
    assert redelivered.status == 409
    assert delivery in (await redelivered.json())["error"]
    other = await client.post("/api/hooks/github", data=payload, headers=_github_headers(payload, str(uuid.uuid4())))
    assert other.status == 200

    forged = _github_headers(payload, str(uuid.uuid4()))
    forged["X-Hub-Signature-256"] = body_signature(b"not-the-secret", payload)
    assert (await client.post("/api/hooks/github", data=payload, headers=forged)).status == 401
    no_delivery = _github_headers(payload, "x")
    del no_delivery["X-GitHub-Delivery"]
    missing = await client.post("/api/hooks/github", data=payload, headers=no_delivery)
    assert missing.status == 400 and "X-GitHub-Delivery" in (await missing.json())["error"]


async def test_a_github_delivery_that_could_not_start_may_be_redelivered(make_client):
    client = await make_client(max_concurrent_executions=1, max_queued_executions=0)
    slow = node("wait", "time.delay", delay_ms=60_000)
    await register(client, _hooked("github", nodes=[slow], signature="github"))
    blocker = await client.post(
        "/api/hooks/github?wait=false", data=b"{}", headers=_github_headers(b"{}", "blocker")
    )
    assert blocker.status == 202
    payload = b'{"action": "opened"}'
    delivery = str(uuid.uuid4())
    refused = await client.post("/api/hooks/github?wait=false", data=payload, headers=_github_headers(payload, delivery))
    assert refused.status == 503
    cancelled = await client.post(f"/api/executions/{(await blocker.json())['execution_id']}/cancel")
    assert cancelled.status == 200
    redelivered = await client.post(
        "/api/hooks/github?wait=false", data=payload, headers=_github_headers(payload, delivery)
    )
    assert redelivered.status == 202, await redelivered.text()
    await client.post(f"/api/executions/{(await redelivered.json())['execution_id']}/cancel")


async def test_a_github_signature_on_a_default_hook_says_how_to_accept_it(client):
    await register(client, _hooked())
    payload = b"{}"
    response = await client.post("/api/hooks/pay", data=payload, headers=_github_headers(payload, "d-1"))
    assert response.status == 401
    assert '"signature": "github"' in (await response.json())["error"]


GARBAGE = [
    "",
    "   ",
    "t=",
    "v1=",
    ",,,",
    "t=abc,v1=" + "0" * 64,
    "t=-5,v1=" + "0" * 64,
    "t=1e9,v1=" + "0" * 64,
    "t=" + "9" * 400 + ",v1=" + "0" * 64,
    "t=1,t=2,v1=" + "0" * 64,
    "t=1700000000",
    "t=1700000000,v1=zz",
    "t=1700000000,v1=" + "0" * 6400,
    "sha256=",
    "sha256=xyz",
    "nonsense",
    "t==,v1==",
]


@pytest.mark.parametrize("scheme", [None, "body-sha256", "github"])
async def test_garbage_signature_headers_are_json_401(client, scheme):
    extra = {"signature": scheme} if scheme else {}
    await register(client, _hooked(**extra))
    header = "X-Hub-Signature-256" if scheme == "github" else "X-Flowengine-Signature"
    for value in GARBAGE:
        headers = {header: value, "X-GitHub-Delivery": "d-1"}
        response = await client.post("/api/hooks/pay", data=b"{}", headers=headers)
        assert response.status == 401, (value, await response.text())
        assert response.content_type == "application/json"
        assert (await response.json())["error"]


@pytest.mark.parametrize(
    ("path", "header", "status"),
    [
        # Undecodable header bytes are a malformed request (400), whichever header holds them.
        (b"/api/hooks/pay", b"X-Flowengine-Signature", 400),
        (b"/api/hooks/github", b"X-Hub-Signature-256", 400),
        (b"/api/hooks/github", b"X-GitHub-Delivery", 400),
        (b"/api/hooks/github", b"X-GitHub-Event", 400),
    ],
)
async def test_undecodable_bytes_in_signature_headers_are_json_errors(client, caplog, path, header, status):
    await register(client, _hooked("github", signature="github"))
    await register(client, _hooked("pay"))
    # Every header the request needs, correct, except the one under test, which holds bytes
    # that are not UTF-8.
    good = {
        b"X-Flowengine-Signature": sign(SECRET, b"{}").encode(),
        b"X-Hub-Signature-256": body_signature(SECRET, b"{}").encode(),
        b"X-GitHub-Delivery": b"d-1",
        b"X-GitHub-Event": b"push",
    }
    good[header] = b"t=1\xff\xfe,v1=\x80\xc3"
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in good.items())
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n" + lines + b"\r\n{}"
    answer_status, _headers, body = await exchange(client.server, head)
    assert answer_status == status, body
    assert header.decode() in json.loads(body)["error"]
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("path", ["../../x", "a/../b", "./a", "a/.", "..", "a/./b"])
async def test_webhook_paths_refuse_dot_segments(client, path):
    response = await client.post("/api/workflows", json=_hooked(path))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("triggers[0].trigger_type.path:") and "'.'" in error


async def test_dots_inside_path_segments_are_fine(client):
    await register(client, _hooked("v1.2/..hidden/a..b"))


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"signature": "sha1"}, "signature: expected one of flowengine, github, body-sha256"),
        ({"secret": None, "signature": "github"}, "a signature needs a secret"),
        ({"secret": "\ud800bad"}, "valid Unicode"),
        ({"secret": {"type": "Secret", "value": "HOOK", "format": "x{}"}}, "takes no format"),
    ],
)
async def test_bad_signature_settings_are_400(client, monkeypatch, trigger, message):
    monkeypatch.setenv("FLOWENGINE_SECRET_HOOK", "hook-key-from-env")
    document = _hooked()
    spec = document["triggers"][0]["trigger_type"]
    spec.update(trigger)
    if spec["secret"] is None:
        del spec["secret"]
    response = await client.post(
        "/api/workflows", data=json.dumps(document), headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert message in (await response.json())["error"]


async def test_the_trigger_list_says_which_signature_a_hook_wants(client):
    await register(client, _hooked("pay"))
    await register(client, _hooked("github", signature="github"))
    listed = {entry["path"]: entry for entry in await (await client.get("/api/triggers")).json()}
    assert (listed["pay"]["signed"], listed["pay"]["signature"]) == (True, "flowengine")
    assert listed["github"]["signature"] == "github"
    assert "secret" not in listed["pay"]


def test_the_replay_memory_is_bounded_without_letting_a_replay_through():
    seen = SeenSignatures(limit=2)
    now, tolerance = 1_000_000.0, 300
    seen.accept("a", 999_990, now, tolerance)
    seen.accept("b", 999_995, now, tolerance)
    seen.accept("c", 999_999, now, tolerance)  # full: "a" is forgotten ...
    assert len(seen) == 2
    with pytest.raises(SignatureError) as refused:
        seen.accept("a", 999_990, now, tolerance)  # ... yet its replay is still refused, by its age
    assert refused.value.status == 401
    with pytest.raises(SignatureError) as replay:
        seen.accept("c", 999_999, now, tolerance)
    assert replay.value.status == 409
    # Past the tolerance everything expires, and memory empties.
    seen.accept("d", 1_000_400, now + 400, tolerance)
    assert len(seen) == 1
