"""Serve flowengine for fuzzing with outbound connections limited to loopback.

The fuzzer registers workflows of its own making. One that holds an ``http.request`` node
with a generated URL must not reach any host but this machine, so before the server starts,
name lookups and socket connections to anything outside 127.0.0.0/8 and ::1 are refused
(the node then fails like it would for an unreachable host, which is a documented outcome).

Usage: ``python fuzz/sandbox.py [flowengine serve flags...]``.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%")[0].lower().rstrip(".")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refused(what: str) -> OSError:
    return ConnectionRefusedError(f"fuzz sandbox: outbound {what} is limited to loopback")


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"fuzz sandbox: no lookups of {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise _refused(f"connection to {address[0]}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise _refused(f"connection to {address[0]}")
    return _real_connect_ex(self, address)


def install() -> None:
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


def main() -> int:
    install()
    from flowengine.cli import main as flowengine_main

    return flowengine_main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
