"""The dashboard's files as HTTP serves them: from memory with a strong ETag and 304, gzip when
asked, the strict Content-Security-Policy, open without credentials and outside the rate limit,
a fixed list of names, documented in OpenAPI, and off with FLOWENGINE_DASHBOARD=0."""

from __future__ import annotations

import gzip

import pytest

from flowengine.config import load_config
from flowengine.lib.ratelimit import parse_rate_limit
from flowengine.server.dashboard import ASSETS, CONTENT_SECURITY_POLICY

FILES = ["app.css", "app.js", "api.js", "graph.js", "views.js", "run.js"]


async def test_index_is_the_page_with_its_security_headers(client):
    response = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    text = await response.text()
    assert "<title>flowengine</title>" in text
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize("name", FILES)
async def test_each_file_is_served_with_its_type_and_revalidates_with_304(client, name):
    response = await client.get(f"/ui/{name}", headers={"Accept-Encoding": "identity"})
    assert response.status == 200
    expected_type = "text/css" if name.endswith(".css") else "text/javascript"
    assert response.headers["Content-Type"] == f"{expected_type}; charset=utf-8"
    body = await response.read()
    assert body == ASSETS[name].body and body
    etag = response.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = await client.get(f"/ui/{name}", headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag
    changed = await client.get(f"/ui/{name}", headers={"If-None-Match": '"something-else"', "Accept-Encoding": "identity"})
    assert changed.status == 200


async def test_gzip_when_asked_with_its_own_etag(client):
    plain = await client.get("/ui/run.js", headers={"Accept-Encoding": "identity"})
    packed = await client.get("/ui/run.js", headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(await packed.read()) == await plain.read()
    assert packed.headers["ETag"] != plain.headers["ETag"]
    refused = await client.get("/ui/run.js", headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers


@pytest.mark.parametrize("path", ["/ui/index.html", "/ui/__init__.py", "/ui/missing.js", "/ui/..%2F__init__.py", "/ui/APP.JS"])
async def test_names_outside_the_list_are_404(client, path):
    response = await client.get(path)
    assert response.status == 404
    assert "error" in await response.json()


async def test_open_without_credentials_and_not_rate_limited(make_client):
    client = await make_client(api_keys={"reader-key-123": "read"}, rate_limit=parse_rate_limit("2/minute"))
    for _ in range(5):
        for path in ["/", "/ui/app.js"]:
            response = await client.get(path)
            assert response.status == 200, path
    assert (await client.get("/api/workflows")).status == 401  # the data still needs credentials


async def test_dashboard_off_answers_404(make_client):
    client = await make_client(dashboard=False)
    for path in ["/", "/ui/app.js"]:
        response = await client.get(path)
        assert response.status == 404
        assert await response.json() == {"error": f"not found: GET {path}"}
    assert (await client.get("/health")).status == 200


def test_the_setting_turns_it_off():
    assert load_config({}).dashboard is True
    assert load_config({"FLOWENGINE_DASHBOARD": "0"}).dashboard is False


async def test_documented_in_openapi(client):
    document = await (await client.get("/openapi.json")).json()
    assert document["paths"]["/"]["get"]["operationId"] == "dashboard"
    files = document["paths"]["/ui/{name}"]["get"]
    assert files["operationId"] == "dashboardFile"
    assert files["security"] == [] and "429" not in files["responses"]


async def test_the_page_names_only_files_it_may_load():
    index = ASSETS["index.html"].body.decode()
    for name in FILES:
        assert f"/ui/{name}" in index
    # No inline script or style (the policy would refuse them) and nothing from elsewhere.
    assert "<style" not in index and "style=" not in index and "http" not in index


def test_every_file_ships_as_package_data():
    """setup.cfg's package_data must name every file served, or an installed wheel would start
    without them (checked by building a wheel once; this keeps the globs in step)."""
    import configparser
    import fnmatch
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[2] / "setup.cfg")
    globs = [glob.strip() for glob in setup["options.package_data"]["flowengine.server.dashboard"].split(",")]
    for name in ASSETS:
        assert any(fnmatch.fnmatch(name, glob) for glob in globs), name
