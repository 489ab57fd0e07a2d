"""The HTTP and WebSocket server: the application factory and its route table, middleware,
access control, OpenAPI document, metrics, and the handlers for workflows, executions and
webhooks."""
