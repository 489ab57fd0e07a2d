"""Standard-library stand-ins: JWT and API keys, rate limiting, Prometheus text, cron, the
private-network guard, log throttling, process metrics, webhook signatures. Nothing here imports
from the rest of flowengine, so each could be lifted out on its own."""
