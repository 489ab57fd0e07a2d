"""What runs the engine in a process: the store, the workflow catalog, the execution service
(admission, history, background runs) and the triggers (webhooks, cron, events)."""
