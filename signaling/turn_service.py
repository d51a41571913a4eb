"""The embedded TURN server's place in `relayroom serve`, and the ICE servers clients get."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from typing import Any

from relayroom.turn.config import TurnConfig, TurnConfigError
from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer

from .config import Config, ConfigError

log = logging.getLogger(__name__)


def turn_secret(config: Config, api_secret: str) -> str:
    """The TURN REST secret: configured, or derived from the API secret (never equal to it)."""
    if config.turn_secret:
        return config.turn_secret
    return hmac.new(api_secret.encode(), b"relayroom turn rest secret", hashlib.sha256).hexdigest()


def public_turn_host(config: Config) -> str:
    if config.turn_public_host:
        return config.turn_public_host
    if config.ice_hosts:
        return config.ice_hosts[0]
    host = config.turn_host or config.host
    return "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host


def turn_config(config: Config, secret: str) -> TurnConfig:
    host = config.turn_host or config.host
    try:
        return TurnConfig(
            listen_host="127.0.0.1" if host == "localhost" else host,
            udp_port=config.turn_port,
            tcp_port=config.turn_port,
            tls_port=config.turn_tls_port,
            tls_cert=str(config.tls_cert) if config.tls_cert else None,
            tls_key=str(config.tls_key) if config.tls_key else None,
            relay_host="127.0.0.1" if host == "localhost" else host,
            relay_public_host=config.turn_public_host,
            relay_port_min=config.turn_relay_port_min,
            relay_port_max=config.turn_relay_port_max,
            secret=secret,
            credential_ttl_s=config.turn_credential_ttl_s,
            allowed_peers=config.turn_allowed_peers,
            max_allocations_per_user=config.turn_max_allocations_per_user,
            max_allocations_total=config.turn_max_allocations_total,
            bandwidth_bytes_per_s=config.turn_bandwidth_bytes_per_s,
        )
    except TurnConfigError as exc:
        raise ConfigError("turn", str(exc)) from None


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class TurnService:
    """Runs the embedded TURN server (unless disabled) and mints credentials for clients."""

    def __init__(self, config: Config, api_secret: str) -> None:
        self._config = config
        self._secret = turn_secret(config, api_secret)
        self.server: TurnServer | None = None
        if config.turn_enabled and not config.turn_urls:
            self.server = TurnServer(turn_config(config, self._secret))

    async def start(self) -> None:
        if self.server is not None:
            try:
                await self.server.start()
            except OSError as exc:
                raise ConfigError(
                    "turn_port", f"cannot start the TURN server: {exc.strerror or exc}"
                ) from None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def urls(self) -> list[str]:
        if self._config.turn_urls:
            return list(self._config.turn_urls)
        server = self.server
        if server is None:
            return []
        host = _url_host(public_turn_host(self._config))
        urls = []
        if server.udp_address is not None:
            urls.append(f"stun:{host}:{server.udp_address[1]}")
            urls.append(f"turn:{host}:{server.udp_address[1]}?transport=udp")
        if server.tcp_address is not None:
            urls.append(f"turn:{host}:{server.tcp_address[1]}?transport=tcp")
        if server.tls_address is not None:
            urls.append(f"turns:{host}:{server.tls_address[1]}?transport=tcp")
        return urls

    def credentials(self, user: str) -> tuple[str, str]:
        safe_user = user.replace(":", "_")
        return rest_credentials(self._secret, safe_user, self._config.turn_credential_ttl_s)

    def ice_servers(self, user: str) -> list[dict[str, Any]]:
        """RTCIceServer objects for a client: STUN plus TURN with ephemeral credentials."""
        urls = self.urls()
        if not urls:
            return []
        stun = [u for u in urls if u.startswith("stun:")]
        turn = [u for u in urls if not u.startswith("stun:")]
        servers: list[dict[str, Any]] = []
        if stun:
            servers.append({"urls": stun})
        if turn:
            username, credential = self.credentials(user)
            servers.append({"urls": turn, "username": username, "credential": credential})
        return servers
