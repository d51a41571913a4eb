"""Counters of the TURN server, read by metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnStats:
    allocations_active: int = 0
    allocations_created: int = 0
    packets_relayed: int = 0
    bytes_relayed: int = 0
    auth_failures: int = 0
    dropped: int = 0
    denied_peers: int = 0
    malformed: int = 0
    quota_rejections: int = 0
    tcp_connections: int = 0
    tcp_connections_accepted: int = 0
