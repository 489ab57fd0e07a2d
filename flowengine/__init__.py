"""flowengine: a small, fast workflow engine server (DAGs of typed nodes over REST + WebSocket)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
