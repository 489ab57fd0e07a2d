"""An n8n server for the benchmark: its own data folder, loopback only, nothing sent outside.

The workflows are imported with n8n's own command line (``import:workflow``) and published
(``publish:workflow``, n8n 2's activation) before the server starts, as an operator would set
up a server from files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LOOPBACK, free_port, pin, stop_process, wait_until_ready
from .install import Peer

__all__ = ["N8nServer", "QUIET"]

START_TIMEOUT = 300.0  # n8n's first start migrates its database: minutes on a busy 2-core machine
STOP_TIMEOUT = 30.0

# Nothing leaves the machine and nothing optional runs: telemetry, diagnostics, version
# notifications, templates, personalization, community packages and AI features off.
QUIET = {
    "N8N_DIAGNOSTICS_ENABLED": "false",
    "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
    "N8N_DIAGNOSTICS_CONFIG_BACKEND": "",
    "EXTERNAL_FRONTEND_HOOKS_URLS": "",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_TEMPLATES_ENABLED": "false",
    "N8N_PERSONALIZATION_ENABLED": "false",
    "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
    "N8N_HIRING_BANNER_ENABLED": "false",
    "N8N_AI_ENABLED": "false",
    "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
    # Its MCP server registry fetches a list from n8n's servers at start-up.
    "N8N_DISABLED_MODULES": "mcp-registry,community-packages,workflow-builder,instance-ai",
    "N8N_LOG_LEVEL": "warn",
    "N8N_SECURE_COOKIE": "false",
    "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
}


@dataclass
class N8nServer:
    """``n8n start`` on a free loopback port, pinned to CPU 0 with all its child processes."""

    peer: Peer
    folder: Path
    name: str = "n8n"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.peer.environment(),
            **QUIET,
            "N8N_USER_FOLDER": str(self.folder),
            "N8N_LISTEN_ADDRESS": LOOPBACK,
            "N8N_HOST": LOOPBACK,
            "N8N_PORT": str(self.port),
            "N8N_PROTOCOL": "http",
            "WEBHOOK_URL": f"{self.url}/",
            "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": LOOPBACK,
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            **self.extra_env,
        }

    def cli(self, *args: str, timeout: float = START_TIMEOUT) -> str:
        """Run an ``n8n`` command on this server's data folder; its output."""
        # At info level: the commands report what they did through the logger.
        result = subprocess.run(self.peer.command(*args), env={**self._env(), "N8N_LOG_LEVEL": "info"}, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"n8n {' '.join(args)} failed ({result.returncode}):\n{output[-3000:]}")
        return output

    def import_workflows(self, documents: list[dict[str, Any]]) -> None:
        """One ``import:workflow`` for all (each n8n command takes seconds to boot), then one
        ``publish:workflow`` each."""
        folder = self.folder / "workflows"
        folder.mkdir(parents=True, exist_ok=True)
        for document in documents:
            (folder / f"{document['id']}.json").write_text(json.dumps(document))
        self.cli("import:workflow", "--separate", f"--input={folder}")
        for document in documents:
            self.cli("publish:workflow", f"--id={document['id']}")

    def __enter__(self) -> N8nServer:
        self.log_path = self.folder / "server.log"
        with open(self.log_path, "wb") as log:
            # Its own session, so that its child processes can be stopped with it.
            self.process = subprocess.Popen([*pin(0), *self.peer.command("start")], env=self._env(), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        if wait_until_ready(self.process, self._ready, name="n8n", log_path=self.log_path, timeout=START_TIMEOUT, interval=0.25):
            return self
        self.__exit__()
        raise RuntimeError(f"n8n did not become ready within {START_TIMEOUT:.0f} s (log: {self.log_path})")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz/readiness", timeout=2) as response:  # URLError is an OSError
            return response.status == 200

    def __exit__(self, *exc_info: Any) -> None:
        if self.process is not None:
            process = self.process
            stop_process(process, signal.SIGTERM, timeout=STOP_TIMEOUT, kill=lambda: os.killpg(process.pid, signal.SIGKILL))
