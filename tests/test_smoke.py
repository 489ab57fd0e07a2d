from support.api import execute, link, node, register


async def test_health(client):
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "healthy", "version": "0.1.0", "service": "flowengine"}


async def test_two_node_execute(client):
    workflow_id = await register(
        client,
        {
            "name": "t",
            "nodes": [node("a", "transform.set", greeting="hi"), node("b", "debug.log")],
            "connections": [link("a", "greeting", "b", "message")],
        },
    )
    body = await execute(client, workflow_id)
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"b": {"message": {"type": "String", "value": "hi"}}}
