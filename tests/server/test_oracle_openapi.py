"""``GET /openapi.json`` validated by openapi-spec-validator, fetched through the real server.

flowengine writes its OpenAPI document by hand (flowengine/server/openapi.py); this checks it against
the OpenAPI specification's own schema and rules, as served, with and without authentication.
"""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


async def _served(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return await response.json()


async def test_served_document_is_valid_openapi(client):
    document = await _served(client)
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises OpenAPIValidationError naming the first problem


async def test_served_document_is_valid_with_authentication_on(make_client):
    client = await make_client(api_keys={"rk_openapi_0123456789": "read"})
    response = await client.get("/openapi.json", headers={"Authorization": "Bearer rk_openapi_0123456789"})
    assert response.status == 200
    validate(await response.json())


async def test_validator_catches_a_broken_document(client):
    # Guard: the validator really reads the whole document. A response without its required
    # description, deep inside the paths, must fail.
    document = await _served(client)
    document["paths"]["/api/workflows"]["get"]["responses"]["200"].pop("description")
    with pytest.raises(OpenAPIValidationError):
        validate(document)
