"""Which peer addresses a TURN allocation may talk to.

Secure by default: every IANA special-purpose range is denied, so a TURN client cannot use the
relay to reach loopback, private networks, link-local metadata services or multicast. IPv6 forms
that embed an IPv4 address (mapped, compatible, 6to4, NAT64) are reduced to that IPv4 address and
checked again, which is how `::ffff:127.0.0.1` and friends got through other servers. The server's
own listener addresses are always denied (even when allow-listed), and its other ports on its own
addresses only reachable when they are live relay addresses (two clients of one server talking).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterable

from relayroom.turn.codec import Address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA IPv4 Special-Purpose Address Registry, plus multicast and the reserved class E block.
DENIED_IPV4: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata services live here)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # TEST-NET-1
    "192.31.196.0/24",  # AS112-v4
    "192.52.193.0/24",  # AMT
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private
    "192.175.48.0/24",  # direct delegation AS112
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, includes 255.255.255.255
)

# IANA IPv6 Special-Purpose Address Registry, plus link/site-local and multicast.
DENIED_IPV6: tuple[str, ...] = (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "64:ff9b::/96",  # NAT64 well-known prefix
    "64:ff9b:1::/48",  # NAT64 local-use prefix
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, AMT, ...)
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "2620:4f:8000::/48",  # direct delegation AS112
    "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # deprecated site-local
    "ff00::/8",  # multicast
)

_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    INVALID = "invalid address"
    OWN_ADDRESS = "server's own address"
    SPECIAL_PURPOSE = "special-purpose range"


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the embedding forms."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _COMPATIBLE or ip in _TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _in_any(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


class PeerFilter:
    """Decides whether a peer transport address may be relayed to.

    `allowed` CIDRs override the special-purpose deny list (tests allow 127.0.0.1); they never
    override the server's own listener addresses. `denied` adds ranges to the built-in list.
    """

    _CACHE_LIMIT = 4096

    def __init__(
        self,
        allowed: Iterable[str] = (),
        denied: Iterable[str] = (),
        *,
        listeners: Iterable[Address] = (),
        own_hosts: Iterable[str] = (),
        is_live_relay: Callable[[Address], bool] | None = None,
    ) -> None:
        self._allowed = _networks(allowed)
        self._denied = _networks((*DENIED_IPV4, *DENIED_IPV6, *denied))
        self._listeners: set[tuple[IPAddress, int]] = set()
        self._wildcard_ports: set[int] = set()
        self._own_hosts: set[IPAddress] = set()
        self._is_live_relay = is_live_relay or (lambda _addr: False)
        # Verdicts that depend on the IP only, bounded (cleared when full).
        self._cache: dict[str, tuple[IPAddress | None, Verdict]] = {}
        self.set_own_addresses(listeners, own_hosts)

    def set_own_addresses(self, listeners: Iterable[Address], own_hosts: Iterable[str]) -> None:
        """Record the server's bound listener addresses and the hosts it listens and relays on."""
        self._listeners.clear()
        self._wildcard_ports.clear()
        for host, port in listeners:
            ip = _reduce(ipaddress.ip_address(host))
            if ip.is_unspecified:
                self._wildcard_ports.add(port)
            else:
                self._listeners.add((ip, port))
        self._own_hosts = {_reduce(ipaddress.ip_address(h)) for h in own_hosts}
        self._own_hosts.discard(ipaddress.IPv4Address("0.0.0.0"))
        self._cache.clear()

    def verdict(self, addr: Address) -> Verdict:
        host, port = addr
        if not 0 < port < 65536:
            return Verdict.INVALID
        ip, static = self._static_verdict(host)
        if ip is None:
            return Verdict.INVALID
        if (ip, port) in self._listeners:
            return Verdict.OWN_ADDRESS
        if port in self._wildcard_ports and (
            ip in self._own_hosts or ip.is_loopback or ip.is_private or ip.is_unspecified
        ):
            # A wildcard listener answers on every local address at this port.
            return Verdict.OWN_ADDRESS
        if static is not Verdict.ALLOWED:
            return static
        if ip in self._own_hosts and not self._is_explicitly_allowed(ip):
            # Other services may listen on the server's own address: only relay ports pass.
            return Verdict.ALLOWED if self._is_live_relay(addr) else Verdict.OWN_ADDRESS
        return Verdict.ALLOWED

    def allows(self, addr: Address) -> bool:
        return self.verdict(addr) is Verdict.ALLOWED

    def _is_explicitly_allowed(self, ip: IPAddress) -> bool:
        return _in_any(ip, self._allowed)

    def _static_verdict(self, host: str) -> tuple[IPAddress | None, Verdict]:
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        result = self._compute_static(host)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def _compute_static(self, host: str) -> tuple[IPAddress | None, Verdict]:
        try:
            original = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None, Verdict.INVALID
        reduced = _reduce(original)
        if _in_any(reduced, self._allowed):
            return reduced, Verdict.ALLOWED
        # Both the IPv6 form and the IPv4 it embeds must pass: 6to4 and NAT64 are denied as
        # whole prefixes, mapped and compatible forms only for what they embed.
        if _in_any(original, self._denied) or _in_any(reduced, self._denied):
            return reduced, Verdict.SPECIAL_PURPOSE
        return reduced, Verdict.ALLOWED


def _reduce(ip: IPAddress) -> IPAddress:
    embedded = embedded_ipv4(ip)
    return embedded if embedded is not None else ip
