"""The private-network guard for http.request (FLOWENGINE_HTTP_BLOCK_PRIVATE=1).

The check runs on the addresses a host name resolves to, in the connector, so it also covers
every redirect (each new host is resolved again) and DNS names that point inside the network.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import aiohttp

__all__ = ["BlockedDestination", "GuardedConnector", "is_blocked"]


class BlockedDestination(aiohttp.ClientConnectionError):
    """The destination is on a network the server may not reach."""


def is_blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses to connect to non-public addresses."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:
        resolved = await super()._resolve_host(host, port, traces=traces)
        for entry in resolved:
            if is_blocked(entry["host"]):
                raise BlockedDestination(
                    f"{host} ({entry['host']}) is a loopback, private, link-local, multicast or reserved"
                    " address; FLOWENGINE_HTTP_BLOCK_PRIVATE=1 forbids it"
                )
        return resolved
