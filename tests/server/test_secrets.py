"""Secrets in node config: resolved at run time from FLOWENGINE_SECRET_<NAME>, refused at
registration when unset or outside a secret-capable config key, masked in every form they could
leak in, sent again for real by retries, and kept from programs shell.exec runs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sqlite3
import sys
from contextlib import closing
from typing import Any

import pytest
from aiohttp import web

from support.api import link, node, register

SECRET_VALUE = "s3cr3t-Token-\"quoted\"-42"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("FLOWENGINE_SECRET_API_TOKEN", SECRET_VALUE)


def _echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        # Echo the credential back, as a careless API might: it must still never be shown.
        return web.json_response({"auth": request.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_get("/", echo)
    return app


def _workflow(url: str) -> dict:
    fetch = node("fetch", "http.request", url=url)
    fetch["config"]["headers"] = {
        "type": "Object",
        "value": {"Authorization": {"type": "Secret", "value": "API_TOKEN"}},
    }
    return {
        "name": "uses a secret",
        "nodes": [fetch, node("log", "debug.log"), node("fail", "transform.json_parse")],
        "connections": [link("fetch", "body", "log", "message"), link("fetch", "body", "fail", "json")],
        "settings": {"on_error": "ContinueOnError"},
    }


async def test_unset_secret_is_refused_at_registration(client):
    document = {"name": "x", "nodes": [node("fetch", "http.request", url="http://127.0.0.1:9/")]}
    document["nodes"][0]["config"]["headers"] = {
        "type": "Object",
        "value": {"Authorization": {"type": "Secret", "value": "MISSING_ONE"}},
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("nodes[0].config.headers:") and "FLOWENGINE_SECRET_MISSING_ONE" in error


async def test_secret_is_used_and_masked_everywhere(secret_env, client, aiohttp_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = await aiohttp_server(_echo_app())
    workflow_id = await register(client, _workflow(str(server.make_url("/"))))

    shown = await (await client.get(f"/api/workflows/{workflow_id}")).text()
    assert SECRET_VALUE not in shown
    assert json.loads(shown)["nodes"][0]["config"]["headers"]["value"]["Authorization"] == {
        "type": "Secret",
        "value": "API_TOKEN",
    }

    ws = await client.ws_connect("/api/events")
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    text = await response.text()
    body = json.loads(text)
    assert response.status == 200, body
    # The request really carried the secret: the echo came back, masked.
    assert body["outputs"]["log"]["message"]["value"] == '{"auth": "***"}'
    assert SECRET_VALUE not in text and "s3cr3t" not in text

    frames = []
    while True:
        frame = await ws.receive_str(timeout=5)
        frames.append(frame)
        if json.loads(frame)["type"] == "WorkflowCompleted":
            break
    await ws.close()
    assert any("***" in frame for frame in frames)
    assert not any("s3cr3t" in frame for frame in frames)

    execution_id = body["execution_id"]
    for path in (f"/api/executions/{execution_id}", f"/api/executions/{execution_id}/events", "/api/executions"):
        assert "s3cr3t" not in await (await client.get(path)).text(), path
    assert "s3cr3t" not in caplog.text


# -- where a Secret may be -------------------------------------------------------------------

SECRET_REF = {"type": "Secret", "value": "API_TOKEN"}


def _one_node(node_type: str, config: dict) -> dict:
    return {"name": "one", "nodes": [{"id": "n", "node_type": node_type, "config": config}]}


@pytest.mark.parametrize(
    ("node_type", "node_config", "path"),
    [
        ("control.if", {"operator": {"type": "String", "value": "matches"}, "compare": SECRET_REF}, "nodes[0].config.compare"),
        ("control.if", {"operator": SECRET_REF}, "nodes[0].config.operator"),
        ("transform.set", {"x": SECRET_REF}, "nodes[0].config.x"),
        (
            "transform.set",
            {"x": {"type": "Object", "value": {"a": {"type": "Array", "value": [{"type": "Null"}, SECRET_REF]}}}},
            "nodes[0].config.x.value.a.value[1]",
        ),
        ("transform.template", {"template": SECRET_REF}, "nodes[0].config.template"),
        ("transform.get", {"path": {"type": "String", "value": "a"}, "default": SECRET_REF}, "nodes[0].config.default"),
        ("transform.json_parse", {"json": SECRET_REF}, "nodes[0].config.json"),
        ("debug.log", {"message": SECRET_REF}, "nodes[0].config.message"),
        ("http.request", {"url": {"type": "String", "value": "http://127.0.0.1:9/"}, "method": SECRET_REF}, "nodes[0].config.method"),
    ],
)
async def test_a_secret_outside_a_secret_capable_key_is_refused(secret_env, client, node_type, node_config, path):
    response = await client.post("/api/workflows", json=_one_node(node_type, node_config))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith(f"{path}: a Secret is not allowed here"), error
    assert node_type in error


async def test_secrets_are_accepted_in_the_declared_keys(secret_env, make_client):
    client = await make_client(enable_shell=True)
    text = {"type": "String", "value": "x"}
    request = {
        "url": {**SECRET_REF, "format": "http://127.0.0.1:9/{}"},
        "headers": {"type": "Object", "value": {"Authorization": SECRET_REF}},
        "query": {"type": "Object", "value": {"key": SECRET_REF, "other": text}},
        "body": {"type": "Object", "value": {"token": SECRET_REF}},
    }
    assert (await client.post("/api/workflows", json=_one_node("http.request", request))).status == 201
    env = {"env": {"type": "Object", "value": {"TOKEN": SECRET_REF}}, "command": {"type": "String", "value": "true"}}
    assert (await client.post("/api/workflows", json=_one_node("shell.exec", env))).status == 201
    described = {item["type"]: item for item in await (await client.get("/api/nodes")).json()}
    secret_keys = {key["name"] for key in described["http.request"]["config"] if key.get("secret")}
    assert secret_keys == {"url", "headers", "query", "body"}
    assert [key["name"] for key in described["shell.exec"]["config"] if key.get("secret")] == ["env"]
    assert not any(key.get("secret") for key in described["control.if"]["config"])


def test_a_plugin_declares_its_secret_keys_and_only_text_keys_can_be_secret():
    from flowengine.nodes import ConfigKey, NodeType

    mail = NodeType(
        type="acme.mail", description="d", category="acme", run=lambda ctx: {},
        config=(ConfigKey("password", "String", secret=True), ConfigKey("subject", "String")),
    )
    assert [key.describe().get("secret", False) for key in mail.config] == [True, False]
    with pytest.raises(ValueError, match="cannot hold a Secret"):
        NodeType(type="acme.bad", description="d", category="acme", run=lambda ctx: {},
                 config=(ConfigKey("port", "Number", secret=True),))


@pytest.mark.parametrize("name", ["\\ud800", "A=B", "A\\u0000B", "x\\udfff"])
async def test_secret_names_no_environment_can_hold_are_400(client, name):
    # The name is spliced in as JSON text: "\\ud800" is how JSON carries a lone surrogate.
    reference = '{"type": "Secret", "value": "NAME"}'.replace("NAME", name)
    raw = json.dumps(_one_node("http.request", {"url": "REF"})).replace('"REF"', reference)
    response = await client.post("/api/workflows", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400, await response.text()
    assert "cannot name an environment variable" in (await response.json())["error"]
    hook = {"name": "x", "triggers": [{"trigger_type": {"type": "Webhook", "path": "p", "secret": "REF"}}]}
    hook = json.dumps(hook).replace('"REF"', reference)
    response = await client.post("/api/workflows", data=hook, headers={"Content-Type": "application/json"})
    assert response.status == 400, await response.text()


@pytest.mark.parametrize("text_format", ["Bearer", "{}{}", "Bearer {} and {}", 42])
async def test_a_secret_format_must_place_the_secret_once(secret_env, client, text_format):
    config = {"url": {"type": "Secret", "value": "API_TOKEN", "format": text_format}}
    response = await client.post("/api/workflows", json=_one_node("http.request", config))
    assert response.status == 400
    assert (await response.json())["error"].startswith("nodes[0].config.url.format:")


# -- what is masked --------------------------------------------------------------------------

PASSWORD = 'pa"ss/w+rd= x\\9'
USER = "svc-robot-7"
CREDS = json.dumps({"user": USER, "password": PASSWORD, "port": 5432})
API_KEY = "AbC/dEf+GhI9="


def _forms_of_the_secrets() -> list[str]:
    """Every form the echo server below gives the secrets in: none may be shown."""
    from urllib.parse import quote, quote_plus

    padded = ("xx" + PASSWORD).encode()
    return [
        USER,
        PASSWORD,
        quote(PASSWORD, safe=""),
        quote_plus(PASSWORD),
        base64.b64encode(PASSWORD.encode()).decode()[:-4],
        base64.urlsafe_b64encode(padded).decode()[4:-4],
        json.dumps(PASSWORD)[1:-1],
        json.dumps(json.dumps(PASSWORD))[1:-1],
        API_KEY,
        "AbC/dEf%2BGhI9%3D",
        quote(API_KEY, safe=""),
    ]


def _strings(document: Any, depth: int = 0) -> list[str]:
    """Every string in a JSON document, and in the JSON documents such strings hold."""
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
            if depth < 4 and item[:1] in '{["':
                try:
                    found.extend(_strings(json.loads(item), depth + 1))
                except ValueError:
                    pass
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _leaks(text: str) -> list[str]:
    try:
        shown = _strings(json.loads(text)) + [text]
    except ValueError:
        shown = [text]
    return sorted({form for form in _forms_of_the_secrets() for item in shown if form in item})


def _echo_forms_app() -> web.Application:
    from urllib.parse import quote, quote_plus

    async def creds(request: web.Request) -> web.Response:
        # A careless API that echoes what it got, taken apart and re-encoded every which way.
        received = json.loads(await request.text())
        password = received["password"]
        return web.json_response(
            {
                "user": received["user"],
                "password": password,
                "percent": quote(password, safe=""),
                "plus": quote_plus(password),
                "base64": base64.b64encode(password.encode()).decode(),
                "base64url_shifted": base64.urlsafe_b64encode(("xx" + password).encode()).decode(),
                "stringified_twice": json.dumps(json.dumps(password)),
                "deep": json.dumps(json.dumps(json.dumps({"p": password}))),
            }
        )

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))  # for ever, until the client gives up

    app = web.Application()
    app.router.add_post("/creds", creds)
    app.router.add_get("/loop", loop)
    return app


@pytest.fixture
def json_secret_env(monkeypatch):
    monkeypatch.setenv("FLOWENGINE_SECRET_CREDS", CREDS)
    monkeypatch.setenv("FLOWENGINE_SECRET_API_KEY", API_KEY)


async def test_json_fields_and_encoded_forms_of_secrets_are_masked_everywhere(
    json_secret_env, client, aiohttp_server, caplog
):
    caplog.set_level(logging.DEBUG)
    server = await aiohttp_server(_echo_forms_app())
    creds = node("creds", "http.request", url=str(server.make_url("/creds")), method="POST")
    creds["config"]["body"] = {"type": "Secret", "value": "CREDS"}
    loop = node("loop", "http.request")
    loop["config"]["url"] = {"type": "Secret", "value": "API_KEY", "format": str(server.make_url("/loop")) + "?api_key={}"}
    document = {
        "name": "echoes",
        "nodes": [creds, node("log", "debug.log"), loop],
        "connections": [link("creds", "json", "log", "message")],
        "settings": {"on_error": "ContinueOnError"},
    }
    workflow_id = await register(client, document)

    ws = await client.ws_connect("/api/events")
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    text = await response.text()
    frames = []
    while True:
        frames.append(await ws.receive_str(timeout=5))
        if json.loads(frames[-1])["type"] == "WorkflowCompleted":
            break
    await ws.close()
    result = json.loads(text)
    assert response.status == 200, result

    # The echo really happened, and what it echoed is masked field by field.
    echoed = result["outputs"]["log"]["message"]["value"]
    assert echoed["user"] == "***" and echoed["password"] == "***"
    assert echoed["percent"] == "***" and echoed["plus"] == "***"
    # The redirect loop's error quotes the URL, its key percent-encoded by the HTTP client.
    (failure,) = result["failed_nodes"]
    assert failure["node_id"] == "loop" and "api_key=***" in failure["error"], failure

    execution_id = result["execution_id"]
    shown = {
        "response": text,
        "frames": "[" + ",".join(frames) + "]",
        "record": await (await client.get(f"/api/executions/{execution_id}")).text(),
        "events": await (await client.get(f"/api/executions/{execution_id}/events")).text(),
        "list": await (await client.get("/api/executions")).text(),
    }
    for where, shown_text in shown.items():
        assert _leaks(shown_text) == [], where
    assert "***" in shown["record"] and "***" in shown["events"]
    assert _leaks(caplog.text) == []
    assert "***" in caplog.text  # debug.log wrote the echo to the log, masked


# -- retries ---------------------------------------------------------------------------------


def _recording_app(received: list[tuple[str, str, str]]) -> web.Application:
    async def auth(request: web.Request) -> web.Response:
        received.append(("auth", request.headers.get("Authorization", ""), ""))
        return web.json_response({"echo": request.headers.get("Authorization", "")})

    async def flaky(request: web.Request) -> web.Response:
        received.append(("flaky", "", await request.text()))
        # Fails the first time only: the retry from the failure then succeeds.
        return web.Response(status=500 if len([r for r in received if r[0] == "flaky"]) == 1 else 200)

    app = web.Application()
    app.router.add_get("/auth", auth)
    app.router.add_post("/flaky", flaky)
    return app


async def test_a_retry_from_the_failure_sends_the_real_secret_again(secret_env, client, aiohttp_server):
    received: list[tuple[str, str, str]] = []
    server = await aiohttp_server(_recording_app(received))
    auth = node("auth", "http.request", url=str(server.make_url("/auth")))
    auth["config"]["headers"] = {
        "type": "Object",
        "value": {"Authorization": {"type": "Secret", "value": "API_TOKEN", "format": "Bearer {}"}},
    }
    flaky = node("flaky", "http.request", url=str(server.make_url("/flaky")), method="POST", fail_on_status=True)
    document = {
        "name": "retry with a secret",
        "nodes": [auth, flaky, node("constant", "transform.set", answer=42)],
        "connections": [link("auth", "body", "flaky", "body")],
        "settings": {"on_error": "ContinueOnError"},
    }
    workflow_id = await register(client, document)
    first = await (await client.post(f"/api/workflows/{workflow_id}/execute")).json()
    assert first["status"] == "completed_with_errors", first
    assert [item["node_id"] for item in first["failed_nodes"]] == ["flaky"]

    retry = await client.post(f"/api/executions/{first['execution_id']}/retry", json={"from_failure": True})
    retried = await retry.json()
    assert retry.status == 200 and retried["status"] == "succeeded", retried

    bearer = f"Bearer {SECRET_VALUE}"
    echo = json.dumps({"echo": bearer})
    assert received == [("auth", bearer, ""), ("flaky", "", echo), ("auth", bearer, ""), ("flaky", "", echo)]
    # A node that held no secret kept its recorded outputs; the one that did ran again.
    events = await (await client.get(f"/api/executions/{retried['execution_id']}/events")).json()
    cached = {event["node_id"]: event.get("cached", False) for event in events if event["type"] == "NodeCompleted"}
    assert cached == {"constant": True, "auth": False, "flaky": False}


# -- shell.exec's environment ----------------------------------------------------------------

_ENV_REPORT = """
import hashlib, json, os
print(json.dumps({
    "server_settings": sorted(name for name in os.environ if name.upper().startswith("FLOWENGINE_")),
    "token_sha256": hashlib.sha256(os.environ.get("TOKEN", "").encode()).hexdigest(),
    "has_path": "PATH" in os.environ,
}))
"""


async def test_shell_exec_gets_no_server_credentials_unless_passed_one(secret_env, make_client, monkeypatch):
    monkeypatch.setenv("FLOWENGINE_API_KEYS", "key-in-env-1:admin")
    monkeypatch.setenv("FLOWENGINE_JWT_SECRET", "jwt-secret-in-env-0123456789")
    monkeypatch.setenv("flowengine_lowercase", "also a server setting")
    client = await make_client(enable_shell=True)
    plain = node("plain", "shell.exec", command=sys.executable, args=["-c", _ENV_REPORT])
    passed = node("passed", "shell.exec", command=sys.executable, args=["-c", _ENV_REPORT])
    passed["config"]["env"] = {"type": "Object", "value": {"TOKEN": {"type": "Secret", "value": "API_TOKEN"}}}
    workflow_id = await register(client, {"name": "env", "nodes": [plain, passed]})
    result = await (await client.post(f"/api/workflows/{workflow_id}/execute")).json()
    assert result["status"] == "succeeded", result
    reports = {name: json.loads(outputs["stdout"]["value"]) for name, outputs in result["outputs"].items()}
    for report in reports.values():
        assert report["server_settings"] == [] and report["has_path"] is True
    assert reports["passed"]["token_sha256"] == hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    assert reports["plain"]["token_sha256"] == hashlib.sha256(b"").hexdigest()


# -- upgrades --------------------------------------------------------------------------------


async def test_a_stored_workflow_with_a_secret_out_of_place_no_longer_loads_and_says_why(
    secret_env, make_client, config, caplog
):
    first = await make_client()
    workflow_id = await register(first, {"id": "old", "name": "from before", "nodes": [node("s", "transform.set", x="y")]})
    await first.close()
    # Written by an older server, which let a Secret into any config key.
    stored = {"id": "old", "name": "from before", "nodes": [_one_node("transform.set", {"x": SECRET_REF})["nodes"][0]]}
    with closing(sqlite3.connect(config.db)) as db, db:
        db.execute("UPDATE workflows SET document = ? WHERE id = ?", (json.dumps(stored), workflow_id))

    caplog.set_level(logging.INFO)
    second = await make_client()
    response = await second.get("/api/workflows/old")
    assert response.status == 404
    error = (await response.json())["error"]
    assert "cannot be loaded" in error and "nodes[0].config.x: a Secret is not allowed here" in error
    logged = [record for record in caplog.records if "old" in record.getMessage() and "not loadable" in record.getMessage()]
    assert logged and "a Secret is not allowed here" in logged[0].getMessage()
    # PUT with the secret where it belongs brings it back.
    replacement = {"name": "fixed", "nodes": [node("s", "transform.set", x="y")]}
    assert (await second.put("/api/workflows/old", json=replacement)).status == 200


@pytest.mark.parametrize("depth", range(7))
def test_masking_covers_json_escaping_at_any_depth_and_url_encoding_of_it(depth):
    from urllib.parse import quote, quote_plus

    from flowengine.core.redaction import Redactor

    redactor = Redactor()
    secret = 'tok\\\\en"\n\té😀/end q+'  # backslashes, a quote, control characters, non-ASCII
    redactor.remember(secret)
    escaped = secret
    for _ in range(depth):
        escaped = json.dumps(escaped, ensure_ascii=depth % 2 == 0)
    for form in (escaped, quote(escaped, safe=""), quote_plus(escaped), quote(escaped)):
        masked = redactor.redact_text(f"<{form}>")
        assert "***" in masked and "tok" not in masked and "end" not in masked, (form, masked)


def test_masking_a_long_run_of_backslashes_finishes():
    from flowengine.core.redaction import Redactor

    redactor = Redactor()
    redactor.remember("back\\\\\\slashes")
    # With a backtracking pattern this would take longer than the test run.
    assert redactor.redact_text("\\" * 100_000 + "x") == "\\" * 100_000 + "x"
