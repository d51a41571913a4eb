"""The embedded TURN server's configuration: one frozen object, validated when built."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class TurnConfigError(ValueError):
    """A TURN setting is out of range or inconsistent."""


def _empty_users() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class TurnConfig:
    """Settings of `turn.server.TurnServer`. Every default is safe for a public deployment except
    the addresses, which default to loopback; port 0 binds an ephemeral port (tests)."""

    realm: str = "relayroom"
    """Long-term credential realm sent to clients in 401 replies."""
    listen_host: str = "127.0.0.1"
    """Address the UDP, TCP and TLS listeners bind to (`0.0.0.0` or `::` for all)."""
    udp_port: int | None = 3478
    """UDP listener port; None disables the UDP listener."""
    tcp_port: int | None = 3478
    """TCP listener port; None disables the TCP listener."""
    tls_port: int = 5349
    """TLS listener port, used only when both `tls_cert` and `tls_key` are set."""
    tls_cert: str | None = None
    """PEM certificate chain file for the TLS listener."""
    tls_key: str | None = None
    """PEM private key file for the TLS listener."""
    relay_host: str = "127.0.0.1"
    """Address the relay sockets bind to; advertised unless `relay_public_host` is set."""
    relay_public_host: str | None = None
    """Address advertised in XOR-RELAYED-ADDRESS when behind a 1:1 NAT (coturn external-ip)."""
    relay_port_min: int = 49152
    """Lowest relay port; `relay_port_min == relay_port_max == 0` lets the kernel choose."""
    relay_port_max: int = 65535
    """Highest relay port."""
    secret: str | None = None
    """Shared secret for TURN REST ephemeral credentials (coturn `static-auth-secret`)."""
    static_users: Mapping[str, str] = field(default_factory=_empty_users)
    """Optional fixed long-term users, user name to password."""
    credential_ttl_s: int = 300
    """Lifetime of ephemeral credentials minted with `credentials.rest_credentials`."""
    allowed_peers: tuple[str, ...] = ()
    """CIDRs that may be relayed to even though they are in a special-purpose range."""
    denied_peers: tuple[str, ...] = ()
    """CIDRs denied in addition to the built-in special-purpose list."""
    default_allocation_lifetime_s: int = 600
    """Allocation lifetime when the client asks for less or nothing (RFC 8656)."""
    max_allocation_lifetime_s: int = 3600
    """Longest allocation lifetime granted per Allocate/Refresh."""
    permission_lifetime_s: int = 300
    """Permission lifetime (RFC 8656: 300 s, not negotiable)."""
    channel_lifetime_s: int = 600
    """Channel binding lifetime (RFC 8656: 600 s)."""
    nonce_lifetime_s: int = 600
    """How long a nonce is accepted before 438 Stale Nonce."""
    max_allocations_per_user: int = 12
    """Allocations one user may hold at once; more gives 486."""
    max_allocations_total: int = 1000
    """Allocations the whole server holds at once; more gives 486."""
    max_permissions_per_allocation: int = 64
    """Distinct peer IPs with a permission per allocation; more gives 508."""
    bandwidth_bytes_per_s: int = 2_000_000
    """Per-allocation relay budget in bytes per second, both directions; 0 disables the cap."""
    auth_reject_rate_per_s: float = 20.0
    """401/438 replies per second per source IP; replies over the rate are dropped."""
    auth_reject_burst: int = 40
    """Burst of 401/438 replies per source IP."""
    max_tcp_connections: int = 1000
    """Concurrent TCP plus TLS client connections."""
    tcp_idle_timeout_s: float = 30.0
    """A TCP/TLS connection without an allocation is closed after this long."""
    max_stream_write_buffer: int = 512 * 1024
    """Bytes queued to a TCP/TLS client before relayed data is dropped instead of queued."""
    sweep_interval_s: float = 1.0
    """How often expired allocations, permissions and channels are removed."""

    def __post_init__(self) -> None:
        if not self.realm or len(self.realm.encode()) > 763:
            raise TurnConfigError("realm must be 1 to 763 bytes")
        for name in ("udp_port", "tcp_port", "tls_port", "relay_port_min", "relay_port_max"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise TurnConfigError(f"{name} must be 0..65535")
        if self.relay_port_min > self.relay_port_max:
            raise TurnConfigError("relay_port_min must not exceed relay_port_max")
        if (self.relay_port_min == 0) != (self.relay_port_max == 0):
            raise TurnConfigError("relay ports: set both to 0 (kernel choice) or neither")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise TurnConfigError("tls_cert and tls_key go together")
        for name in ("listen_host", "relay_host"):
            _check_ip(name, getattr(self, name))
        if self.relay_public_host is not None:
            _check_ip("relay_public_host", self.relay_public_host)
        if ipaddress.ip_address(self.relay_host).is_unspecified:
            raise TurnConfigError("relay_host must be a concrete address clients can reach")
        for cidr in (*self.allowed_peers, *self.denied_peers):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise TurnConfigError(f"bad CIDR {cidr!r}") from exc
        positive = (
            "credential_ttl_s",
            "default_allocation_lifetime_s",
            "max_allocation_lifetime_s",
            "permission_lifetime_s",
            "channel_lifetime_s",
            "nonce_lifetime_s",
            "max_allocations_per_user",
            "max_allocations_total",
            "max_permissions_per_allocation",
            "auth_reject_rate_per_s",
            "auth_reject_burst",
            "max_tcp_connections",
            "tcp_idle_timeout_s",
            "max_stream_write_buffer",
            "sweep_interval_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise TurnConfigError(f"{name} must be positive")
        if self.default_allocation_lifetime_s > self.max_allocation_lifetime_s:
            raise TurnConfigError("default allocation lifetime exceeds the maximum")
        if self.bandwidth_bytes_per_s < 0:
            raise TurnConfigError("bandwidth_bytes_per_s must be >= 0")
        if self.secret is not None and not self.secret:
            raise TurnConfigError("secret must not be empty")
        # Freeze the users mapping so the config stays immutable.
        object.__setattr__(self, "static_users", MappingProxyType(dict(self.static_users)))

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def has_credentials(self) -> bool:
        """True when some client can authenticate: there is no unauthenticated mode."""
        return bool(self.secret) or bool(self.static_users)

    def __repr__(self) -> str:
        # Never print the secret or the passwords (configs end up in logs).
        shown = {k: v for k, v in self.__dict__.items() if k not in ("secret", "static_users")}
        shown["secret"] = "***" if self.secret else None
        shown["static_users"] = sorted(self.static_users)
        return f"TurnConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _check_ip(name: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise TurnConfigError(f"{name} must be an IP address, got {value!r}") from exc
