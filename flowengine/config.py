"""Server configuration: one table of settings, read from the environment and CLI flags.

Every setting has an environment variable and a ``flowengine serve`` flag (the flag wins).
A bad value stops start-up with a one-line message naming the variable (exit code 2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .lib.auth import parse_api_keys, parse_audiences
from .lib.ratelimit import RateLimit, parse_rate_limit

__all__ = ["Config", "ConfigError", "SETTINGS", "add_arguments", "load_config", "LOG_LEVELS", "LOOPS"]

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
# SQLite's PRAGMA synchronous in WAL mode: normal survives a crash of the process, full also a
# loss of power (one fsync per commit).
SYNCHRONOUS_MODES = ("normal", "full")
# The server's event loop: auto is uvloop when it is installed (the extra ``fast``), else asyncio.
LOOPS = ("auto", "asyncio", "uvloop")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 3000
    log_level: str = "info"
    db: str = "flowengine.db"
    max_body_bytes: int = 16 * 1024 * 1024
    ws_queue: int = 10_000
    ws_heartbeat: float = 30.0
    enable_shell: bool = False
    plugins: tuple[str, ...] = ()
    max_executions: int = 10_000
    max_nodes: int = 10_000
    api_keys: Mapping[str, str] = field(default_factory=dict)  # key -> scope
    jwt_secret: str | None = None
    rate_limit: RateLimit | None = None
    http_block_private: bool = False
    max_concurrent_executions: int = 64
    max_queued_executions: int = 1000
    max_cluster_queued_executions: int = 10_000
    history_ack: str = "commit"
    db_synchronous: str = "normal"
    history_queue_bytes: int = 64 * 1024 * 1024
    max_recorded_events: int = 10_000
    max_workflow_connections: int = 20_000
    webhook_tolerance_s: int = 300
    jwt_audience: tuple[str, ...] = ()
    max_connections: int = 1000
    head_timeout: float = 20.0
    history_queue_wait: float = 10.0
    dashboard: bool = True
    node_heartbeat: float = 2.0
    node_timeout: float = 10.0
    db_pool_size: int = 10
    db_direct_url: str | None = None
    loop: str = "auto"
    workers: int = 1

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys) or self.jwt_secret is not None

    @property
    def uses_postgres(self) -> bool:
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def db_shown(self) -> str:
        """FLOWENGINE_DB as logs may show it: a URL's password masked."""
        scheme, sep, rest = self.db.partition("://")
        credentials, at, host = rest.rpartition("@")
        if not sep or not at or ":" not in credentials:
            return self.db
        return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{host}"

    @property
    def bind_address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _bind(text: str) -> dict[str, Any]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:3000 or [::1]:3000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("put IPv6 addresses in brackets, e.g. [::1]:3000")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return {"host": host, "port": int(port)}


def _log_level(text: str) -> dict[str, Any]:
    level = _level_from_directives(text.strip().lower())
    if level == "warning":
        level = "warn"
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return {"log_level": level}


def _level_from_directives(text: str) -> str:
    """RUST_LOG may hold directives like ``info,flowengine=debug``: a directive for flowengine
    wins, then a bare level (the default for every target), then the first directive's level."""
    directives = [part.strip() for part in text.split(",") if part.strip()] or [text]
    for directive in directives:
        target, sep, level = directive.partition("=")
        if sep and target.split("::")[0] == "flowengine":
            return level
    for directive in directives:
        if "=" not in directive:
            return directive
    return directives[0].rpartition("=")[2]


def _positive_int(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        text = text.strip().replace("_", "")
        if not text.isdigit() or int(text) < 1:
            raise ValueError("expected a whole number of at least 1")
        return {name: int(text)}

    return parse


def _positive_float(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if not value > 0:
            raise ValueError("expected a number above 0")
        return {name: value}

    return parse


def _flag(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return {name: True}
        if lowered in ("0", "false", "no", "off", ""):
            return {name: False}
        raise ValueError("expected 1/0, true/false, yes/no or on/off")

    return parse


def _modules(text: str) -> dict[str, Any]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    return {"plugins": names}


def _text(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        if not text:
            raise ValueError("must not be empty")
        return {name: text}

    return parse


@dataclass(frozen=True)
class Setting:
    env: str
    flag: str
    default: str
    parse: Callable[[str], dict[str, Any]]
    help: str
    fallback_env: str | None = None
    secret: bool = False  # never echo the value in an error message
    switch: bool = False  # a flag without a value that turns the setting on


def _optional(parse: Callable[[str], Any], name: str) -> Callable[[str], dict[str, Any]]:
    """An empty value means "not set" (None); anything else goes through ``parse``."""

    def parse_optional(text: str) -> dict[str, Any]:
        return {name: parse(text) if text.strip() else None}

    return parse_optional


def _api_keys(text: str) -> dict[str, Any]:
    return {"api_keys": parse_api_keys(text) if text.strip() else {}}


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return {name: lowered}

    return parse


def _jwt_audience(text: str) -> dict[str, Any]:
    return {"jwt_audience": parse_audiences(text)}


def _count(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        text = text.strip().replace("_", "")
        if not text.isdigit():
            raise ValueError("expected a whole number (0 or more)")
        return {name: int(text)}

    return parse


SETTINGS = (
    Setting("BIND_ADDRESS", "--bind", "0.0.0.0:3000", _bind, "address to listen on, HOST:PORT ([::1]:3000 for IPv6)"),
    Setting("LOG_LEVEL", "--log-level", "info", _log_level, "error, warn, info, debug or trace", "RUST_LOG"),
    Setting("FLOWENGINE_DB", "--db", "flowengine.db", _text("db"), "SQLite database file (:memory: for a throwaway server), or a postgresql:// URL that several processes share"),
    Setting("FLOWENGINE_MAX_BODY_BYTES", "--max-body-bytes", str(16 * 1024 * 1024), _positive_int("max_body_bytes"), "largest request body accepted (413 beyond)"),
    Setting("FLOWENGINE_WS_QUEUE", "--ws-queue", "10000", _positive_int("ws_queue"), "events in flight per WebSocket listener (not yet taken by its socket) before it is dropped (1013)"),
    Setting("FLOWENGINE_WS_HEARTBEAT", "--ws-heartbeat", "30", _positive_float("ws_heartbeat"), "seconds between WebSocket pings to idle listeners"),
    Setting("FLOWENGINE_ENABLE_SHELL", "--enable-shell", "0", _flag("enable_shell"), "allow the shell.exec node type", switch=True),
    Setting("FLOWENGINE_PLUGINS", "--plugins", "", _modules, "comma-separated modules with extra node types"),
    Setting("FLOWENGINE_MAX_EXECUTIONS", "--max-executions", "10000", _positive_int("max_executions"), "finished executions kept in history"),
    Setting("FLOWENGINE_MAX_NODES", "--max-nodes", "10000", _positive_int("max_nodes"), "largest workflow accepted, in nodes"),
    Setting("FLOWENGINE_API_KEYS", "--api-keys", "", _api_keys, "KEY:SCOPE,... (scopes read, execute, admin); turns authentication on", secret=True),
    Setting("FLOWENGINE_JWT_SECRET", "--jwt-secret", "", _optional(str, "jwt_secret"), "HS256 secret for JWT bearer tokens; turns authentication on", secret=True),
    Setting("FLOWENGINE_RATE_LIMIT", "--rate-limit", "", _optional(parse_rate_limit, "rate_limit"), "N/second or N/minute, optionally ,burst=M, per client"),
    Setting("FLOWENGINE_HTTP_BLOCK_PRIVATE", "--http-block-private", "0", _flag("http_block_private"), "http.request refuses loopback, private and reserved addresses", switch=True),
    Setting("FLOWENGINE_MAX_CONCURRENT_EXECUTIONS", "--max-concurrent-executions", "64", _positive_int("max_concurrent_executions"), "executions running at once; more wait in a queue"),
    Setting("FLOWENGINE_MAX_QUEUED_EXECUTIONS", "--max-queued-executions", "1000", _count("max_queued_executions"), "executions waiting for a slot before 503"),
    Setting("FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS", "--max-cluster-queued-executions", "10000", _count("max_cluster_queued_executions"), "PostgreSQL: executions waiting in the shared run queue before 503"),
    Setting("FLOWENGINE_HISTORY_ACK", "--history-ack", "commit", _choice("history_ack", ("commit", "async")), "commit: answer an execution only once its record is committed; async: answer at once (a crash may lose the last 20 ms of answered executions)"),
    Setting("FLOWENGINE_DB_SYNCHRONOUS", "--db-synchronous", "normal", _choice("db_synchronous", SYNCHRONOUS_MODES), "SQLite synchronous mode: normal survives a process crash, full also a power loss (slower commits)"),
    Setting("FLOWENGINE_HISTORY_QUEUE_BYTES", "--history-queue-bytes", str(64 * 1024 * 1024), _positive_int("history_queue_bytes"), "history not yet written to disk beyond which new executions wait (503 after FLOWENGINE_HISTORY_QUEUE_WAIT)"),
    Setting("FLOWENGINE_MAX_RECORDED_EVENTS", "--max-recorded-events", "10000", _positive_int("max_recorded_events"), "events kept in one execution's record (the first and last half; all are still streamed live)"),
    Setting("FLOWENGINE_MAX_WORKFLOW_CONNECTIONS", "--max-workflow-connections", "20000", _positive_int("max_workflow_connections"), "largest workflow accepted, in connections"),
    Setting("FLOWENGINE_WEBHOOK_TOLERANCE", "--webhook-tolerance", "300", _positive_int("webhook_tolerance_s"), "seconds a signed webhook's timestamp may be off the server's clock"),
    Setting("FLOWENGINE_JWT_AUDIENCE", "--jwt-audience", "", _jwt_audience, "audiences (comma-separated) a JWT's aud claim must name; unset, tokens with aud are refused"),
    Setting("FLOWENGINE_MAX_CONNECTIONS", "--max-connections", "1000", _positive_int("max_connections"), "client connections open at once; more wait to be accepted (lowered to fit ulimit -n)"),
    Setting("FLOWENGINE_HISTORY_QUEUE_WAIT", "--history-queue-wait", "10", _positive_float("history_queue_wait"), "seconds a new execution waits for room in the history queue before 503"),
    Setting("FLOWENGINE_DASHBOARD", "--dashboard", "1", _flag("dashboard"), "serve the built-in dashboard at / (0: / and /ui/* answer 404)"),
    Setting("FLOWENGINE_NODE_HEARTBEAT", "--node-heartbeat", "2", _positive_float("node_heartbeat"), "PostgreSQL: seconds between two heartbeats of this process"),
    Setting("FLOWENGINE_NODE_TIMEOUT", "--node-timeout", "10", _positive_float("node_timeout"), "PostgreSQL: seconds without a heartbeat after which a process is dead and its running executions are recorded interrupted"),
    Setting("FLOWENGINE_DB_POOL_SIZE", "--db-pool-size", "10", _positive_int("db_pool_size"), "PostgreSQL: pooled connections per process (each process opens 2 more)"),
    Setting("FLOWENGINE_DB_DIRECT_URL", "--db-direct-url", "", _optional(str, "db_direct_url"), "PostgreSQL: URL for the LISTEN connection when FLOWENGINE_DB goes through a transaction pooler", secret=True),
    Setting("FLOWENGINE_HEAD_TIMEOUT", "--head-timeout", "20", _positive_float("head_timeout"), "seconds a client has to send a whole request head (line and headers) before it is closed (408)"),
    Setting("FLOWENGINE_WORKERS", "--workers", "1", _positive_int("workers"), "server processes sharing the port (SO_REUSEPORT), supervised by this one; more than 1 needs a postgresql:// FLOWENGINE_DB"),
    Setting("FLOWENGINE_LOOP", "--loop", "auto", _choice("loop", LOOPS), "event loop: asyncio, uvloop (needs the extra flowengine-server[fast]) or auto (uvloop when installed, else asyncio)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; flags default to None so the environment can fill in."""
    for setting in SETTINGS:
        if setting.switch:
            parser.add_argument(setting.flag, action="store_const", const="1", default=None, help=setting.help)
        else:
            parser.add_argument(setting.flag, default=None, metavar="VALUE", help=f"{setting.help} [{setting.env}, default {setting.default!r}]")


def load_config(environ: Mapping[str, str] = os.environ, args: argparse.Namespace | None = None) -> Config:
    """Build the Config from flags, then the environment, then the defaults."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        attribute = setting.flag.lstrip("-").replace("-", "_")
        text = getattr(args, attribute, None) if args is not None else None
        source = setting.flag
        if text is None:
            for env in (setting.env, setting.fallback_env):
                if env and env in environ:
                    text, source = environ[env], env
                    break
        if text is None:
            text, source = setting.default, setting.env
        try:
            values.update(setting.parse(text))
        except ValueError as exc:
            shown = source if setting.secret else f"{source}={text!r}"
            raise ConfigError(f"invalid {shown}: {exc}") from None
    known = {field.name for field in fields(Config)}
    return Config(**{key: value for key, value in values.items() if key in known})
