"""Where outbound webhooks may go: no private, loopback or link-local addresses (SSRF).

A partner chooses the URL, so a URL is an instruction to make the gateway — which sits inside
the network — open a connection somewhere. Only globally routable addresses are allowed,
unless an operator allow-lists networks or host names (``GATEWAY_OUTBOUND_ALLOWED``).

The check runs twice: when an endpoint is saved (a clear ``422`` for the partner) and at
every connection, inside the resolver the HTTP client connects through — so a name that
resolves to a public address when saved and to ``10.0.0.5`` later (DNS rebinding) is still
refused, and the address checked is the address connected to. Literal IP hosts skip DNS and
are checked before the request.

IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64 ``64:ff9b::/96``,
6to4 ``2002::/16``, Teredo, SIIT ``::ffff:0:0:0/96``) must have a public IPv4 inside too, and
RFC 8215's local-use NAT64 prefix ``64:ff9b:1::/48`` is never public: Python 3.11 calls
``64:ff9b::a9fe:a9fe`` global, but a NAT64 gateway delivers it to ``169.254.169.254``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["AddressPolicy", "GuardedResolver", "UnsafeAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 prefixes whose last 32 bits are an IPv4 address a translator may connect to.
_EMBEDDING_V4 = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
#: Not global although Python 3.11 says so: RFC 8215's local-use NAT64 prefix.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to through a translator or tunnel."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _EMBEDDING_V4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


class UnsafeAddress(OSError):
    """The URL or the address it resolves to is not allowed; the message says why."""


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AddressPolicy:
    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def address_allowed(self, address: IPAddress) -> bool:
        if any(address in n for n in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
            return False
        return address.is_global and all(
            self.address_allowed(inner) for inner in _embedded_ipv4(address)
        )

    def check_address(self, host: str, address: str) -> None:
        ip = _ip(address)
        if ip is None or not self.address_allowed(ip):
            raise UnsafeAddress(
                f"{host} is {address}: private, loopback, link-local and other non-public"
                " addresses are refused unless an operator allow-lists them"
            )

    def check_url(self, url: str) -> None:
        """Syntax and literal addresses; raises :class:`UnsafeAddress` or ``ValueError``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("the URL must be http:// or https://")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.username or parts.password:
            raise ValueError("the URL must not carry credentials")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("the URL's port is not a number from 0 to 65535") from None
        host = parts.hostname.rstrip(".")
        if host in self.hosts:
            return
        if _ip(host) is not None:
            self.check_address(host, host)

    async def check_resolves(self, url: str) -> None:
        """Resolve the URL's host now and refuse it if any address is not allowed. A name
        that does not resolve (yet) is accepted: every connection checks again."""
        self.check_url(url)
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if host in self.hosts or _ip(host) is not None:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError:
            return
        for info in infos:
            self.check_address(host, str(info[4][0]))


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses host names resolving to addresses not allowed."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") not in self._policy.hosts:
            for result in results:
                self._policy.check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()
