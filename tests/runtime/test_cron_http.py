"""Cron rules as a client sees them: refused expressions are 400s that store nothing, and
SUN-SUN schedules Sundays only (GET /api/triggers shows the next fire time)."""

from __future__ import annotations

from datetime import datetime

import pytest

from support.api import node, register


def _document(expression: str, timezone: str | None = None) -> dict:
    trigger = {"type": "Cron", "expression": expression}
    if timezone:
        trigger["timezone"] = timezone
    return {"name": "cron", "nodes": [node("log", "debug.log")], "triggers": [{"id": "t", "trigger_type": trigger}]}


@pytest.mark.parametrize("expression,timezone,fragment", [
    ("0 0 * * 7/1", None, "day-of-week: '7/1' selects no day"),
    ("0 0 30 2 *", None, "day-of-month: 30 never occurs in month 2"),
    ("* 30 2 25-31 3 */7", "Europe/Berlin", "never fires in Europe/Berlin"),
    ("1" * 5000 + " * * * *", None, "minute:"),
])
async def test_expression_that_can_never_fire_is_400_and_stores_nothing(client, expression, timezone, fragment):
    response = await client.post("/api/workflows", json=_document(expression, timezone))
    body = await response.json()
    assert response.status == 400, body
    assert body["error"].startswith("triggers[0].trigger_type.expression: ")
    assert fragment in body["error"]
    assert await (await client.get("/api/workflows")).json() == []
    # The same goes for replacing a stored workflow: it keeps its old, valid version.
    workflow_id = await register(client, _document("0 0 * * *"))
    response = await client.put(f"/api/workflows/{workflow_id}", json=_document(expression, timezone))
    assert response.status == 400
    stored = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert stored["triggers"][0]["trigger_type"]["expression"] == "0 0 * * *"


async def test_sun_sun_fires_on_sundays_only(client):
    workflow_id = await register(client, _document("0 12 * * SUN-SUN"))
    listed = await (await client.get("/api/triggers")).json()
    (entry,) = [item for item in listed if item["workflow_id"] == workflow_id]
    next_fire = datetime.fromisoformat(entry["next_fire"].replace("Z", "+00:00"))
    assert next_fire.isoweekday() == 7 and next_fire.hour == 12
