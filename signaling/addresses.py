"""Which of the machine's addresses clients are told about when the server listens on all.

`--host 0.0.0.0` binds every interface, but a URL, a TURN relay socket and a relayed address
need one concrete address: the first `--ice-host` (what browsers already use for media), else
the machine's only non-loopback address. With several and no `--ice-host` the choice is the
operator's, and the error says which setting to give.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from .config import Config, ConfigError


def interface_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (what aioice gathers as host candidates)."""
    from aioice.ice import get_host_addresses

    return [
        a
        for a in get_host_addresses(use_ipv4=True, use_ipv6=False)
        if not ipaddress.ip_address(a).is_loopback
    ]


def is_wildcard(host: str) -> bool:
    """True for a listen address that means "every interface"."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def advertised_host(config: Config, interfaces: Sequence[str] | None = None) -> str | None:
    """The address clients reach this machine on when it listens on every interface: the
    first ice host, else the only non-loopback interface address; None when ambiguous."""
    if config.ice_hosts:
        return config.ice_hosts[0]
    local = interface_addresses() if interfaces is None else list(interfaces)
    return local[0] if len(local) == 1 else None


def relay_host(config: Config, interfaces: Sequence[str] | None = None) -> str:
    """The concrete local address TURN relay sockets bind to."""
    host = config.turn_host or config.host
    if host == "localhost":
        return "127.0.0.1"
    if not is_wildcard(host):
        return host
    local = interface_addresses() if interfaces is None else list(interfaces)
    for candidate in config.ice_hosts:
        if candidate in local or ipaddress.ip_address(candidate).is_loopback:
            return candidate
    if len(local) == 1:
        return local[0]
    found = ", ".join(local) if local else "none but loopback"
    raise ConfigError(
        "turn_host",
        f"host is {host} and this machine has several or no non-loopback addresses "
        f"({found}): give --ice-host ADDR (the address browsers reach this machine on) or "
        "set turn_host to the local address TURN relays from",
    )


def display_url(config: Config, port: int) -> str:
    """The URL printed at start-up: one a browser on another machine can open."""
    if config.public_url:
        return config.public_url.rstrip("/") + "/"
    host = config.host
    if host == "localhost":
        host = "127.0.0.1"
    elif is_wildcard(host):
        host = advertised_host(config) or ("::1" if ":" in host else "127.0.0.1")
    if ":" in host:
        host = f"[{host}]"
    return f"{config.scheme}://{host}:{port}/"
