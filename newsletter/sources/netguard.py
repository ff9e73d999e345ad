"""Which addresses a feed may be fetched from, checked where each connection is made.

Whoever edits publication.toml chooses a feed's URL, but the feed's server chooses where its
redirects lead, and a DNS name can point anywhere. A fetch that ends on a cloud metadata
service (169.254.169.254 and friends) hands out the machine's credentials, so:

* link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata addresses that
  live elsewhere (``METADATA``) are never connected to;
* loopback, private (RFC 1918, fc00::/7), shared (CGNAT, 100.64.0.0/10) and every other
  address that is not globally reachable only when the source opts in with
  ``allow_private_network = true``;
* an IPv6 address that carries an IPv4 address (``::ffff:169.254.169.254``, NAT64, 6to4)
  is judged by the IPv4 address it reaches.

The check sits in the connection itself (``GuardedAdapter``): every hop of a redirect opens
its own connection, and the name is resolved once, every address it resolves to is checked,
and the socket is connected to an address that was checked, so a second lookup answering
differently (DNS rebinding) never comes into it. Through a configured proxy the proxy
connects and resolves: addresses written in the URL, and ``localhost`` names, are checked
before the request is handed to it; other names are the proxy's to resolve and police.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util.url import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Metadata services outside the link-local range, refused even when a source opts in.
METADATA: Mapping[IPAddress, str] = {
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud",
    ipaddress.ip_address("fd00:ec2::254"): "Amazon EC2 over IPv6",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud Classic",
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LINK_LOCAL = "a link-local address, where cloud metadata services answer"
METADATA_KIND = "a cloud metadata address"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What kind of address this is, and whether a source may ever reach it."""

    kind: str  # "a loopback address", …; "" for a public address
    never: bool = False  # refused whatever the source allows

    @property
    def public(self) -> bool:
        return not self.kind


PUBLIC = Verdict("")


def judge(address: IPAddress) -> Verdict:
    """The verdict on one address (see the module's docstring).

    An IPv6 address that carries an IPv4 one is refused if either form is, and otherwise
    judged public or not by the IPv4 address it reaches.
    """
    embedded = _embedded_ipv4(address)
    forms: tuple[IPAddress, ...] = (address,) if embedded is None else (address, embedded)
    if any(form in METADATA for form in forms):
        return Verdict(METADATA_KIND, never=True)
    if any(form.is_link_local for form in forms):
        return Verdict(LINK_LOCAL, never=True)
    if any(form.is_loopback for form in forms):
        return Verdict("a loopback address")
    if any(form.is_unspecified for form in forms):
        return Verdict("an unspecified address (this machine)")
    reached = embedded or address
    if reached.is_private:
        return Verdict("a private-network address")
    if not reached.is_global or reached.is_multicast:
        return Verdict("a shared or reserved address, not on the public internet")
    return PUBLIC


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, NAT64, 6to4 or IPv4-compatible."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def shown(address: IPAddress) -> str:
    """The address as a person writes it: ``::ffff:169.254.169.254``, not ``::ffff:a9fe:a9fe``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


class RefusedAddress(Exception):
    """A connection that was not made, because of the address it would have gone to.

    Not an ``OSError`` on purpose: urllib3 and requests wrap those into "could not connect"
    and would retry; this one travels up untouched, and the adapter adds the URL.
    """

    def __init__(self, host: str, address: IPAddress, verdict: Verdict) -> None:
        self.host = host
        self.address = address
        self.verdict = verdict
        self.url = ""
        super().__init__(str(self))

    def __str__(self) -> str:
        address = shown(self.address)
        if _unbracketed(self.host) in (address, str(self.address)):
            return f"{address} is {self.verdict.kind}"
        return f"{self.host} resolves to {address}, {self.verdict.kind}"


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """What one source may connect to."""

    allow_private: bool = False

    def check(self, host: str, address: IPAddress) -> None:
        verdict = judge(address)
        if verdict.never or (not verdict.public and not self.allow_private):
            raise RefusedAddress(host, address, verdict)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, each checked; raises ``RefusedAddress``."""
        name = _unbracketed(host)
        family = urllib3_connection.allowed_gai_family()
        found = socket.getaddrinfo(name, port, family, socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(_address(str(info[4][0])) for info in found))
        for address in addresses:
            self.check(host, address)
        return addresses

    def check_proxied(self, url: str) -> None:
        """Before a proxy fetches ``url``: the address in it, or a ``localhost`` name."""
        host = _unbracketed(parse_url(url).host or "")
        address = _written_address(host)
        name = host.lower().rstrip(".")
        if address is None and (name == "localhost" or name.endswith(".localhost")):
            address = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback
        if address is not None:
            self.check(host, address)


def _written_address(host: str) -> IPAddress | None:
    """The address a URL's host spells, including IPv4 shorthands a resolver accepts
    (``127.1``, ``0x7f000001``, ``2130706433``); ``None`` for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 zone ("fe80::1%eth0")


def _unbracketed(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


# --- the connection ---------------------------------------------------------------------------


class _GuardedConnection(HTTPConnection):
    """Resolves and checks its host, then connects to a checked address (never the name)."""

    policy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.policy.resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        return self._connect_to(addresses)

    def _connect_to(self, addresses: list[IPAddress]) -> socket.socket:
        """The first address that answers, tried in the resolver's order like urllib3 does."""
        failure: OSError = OSError(f"{self.host} resolves to no address")
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (str(address), self.port),  # an address: urllib3 looks up nothing more
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                message = f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                raise ConnectTimeoutError(self, message) from exc
            except OSError as exc:
                failure = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {failure}")


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    """TLS over the checked socket; the certificate is still checked against the host name."""


@cache
def _connection_classes(policy: AddressPolicy) -> dict[str, type[HTTPConnection]]:
    """One pair of connection classes per policy (there are two policies)."""
    attributes = {"policy": policy, "__module__": __name__}
    return {
        "http": type("GuardedHTTPConnection", (_GuardedConnection,), attributes),
        "https": type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), attributes),
    }


class _GuardedPoolManager(PoolManager):
    def __init__(self, policy: AddressPolicy, **options: Any) -> None:
        super().__init__(**options)
        self._classes = _connection_classes(policy)

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = self._classes[scheme]
        return pool


class GuardedAdapter(HTTPAdapter):
    """requests' adapter with every connection checked against ``policy``.

    A refusal is raised as ``RefusedAddress`` carrying the URL of the hop it stopped.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy  # before super().__init__, which builds the pool manager
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self.poolmanager = _GuardedPoolManager(
            self.policy, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        url = request.url or ""
        try:
            if select_proxy(url, dict(proxies or {})):
                self.policy.check_proxied(url)
            return super().send(request, stream, timeout, verify, cert, proxies)
        except RefusedAddress as exc:
            exc.url = url
            raise
