"""`relayroom` command line: serve, token, --version."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from relayroom import __version__
from relayroom.api import AccessToken
from relayroom.loadtest import cli as loadtest_cli
from relayroom.turn.credentials import rest_credentials

from . import cli_recording
from .addresses import advertised_host, display_url, is_wildcard
from .admin import STATS_KEY
from .cluster import ClusterRouter
from .cluster_admin import setup_workers_api
from .cluster_http import setup_http_forwarding
from .config import Config, ConfigError, load_config, worker_count
from .host_metrics import setup_host_metrics
from .ipc_bus import IpcBus
from .logs import LOG_FORMATS, set_node, setup_logging
from .redis_bus import RedisBus, require_redis
from .server import DEV_SECRET_FILE, Server, create_app, resolve_secret
from .serving import start_serving
from .supervisor import Supervisor
from .tokens import GRANT_NAMES, Grants, TokenRequestError
from .turn_service import public_turn_host, turn_secret
from .worker import LoadMeter, WorkerSetup, die_with_parent, read_setup

log = logging.getLogger("relayroom")

LISTEN_BACKLOG = 1024

# Flags of `serve` that map one-to-one onto Config fields.
SERVE_FLAGS: dict[str, str] = {
    "host": "host",
    "port": "port",
    "api_secret": "api_secret",
    "data_dir": "data_dir",
    "redis": "redis_url",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "log_level": "log_level",
    "log_format": "log_format",
    "turn_enabled": "turn_enabled",
    "turn_port": "turn_port",
    "workers": "workers",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relayroom", description="WebRTC signaling server and media relay (SFU)."
    )
    parser.add_argument("--version", action="version", version=f"relayroom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    _add_config_flags(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", help="listen port (default 8080)")
    serve.add_argument(
        "--ice-host",
        action="append",
        dest="ice_host",
        metavar="ADDR",
        help="host address offered as an ICE candidate (repeatable)",
    )
    serve.add_argument("--redis", metavar="URL", help="Redis URL for multi-node mode")
    serve.add_argument(
        "--workers",
        metavar="N",
        help="worker processes: a number or auto (the usable cores); 1: one process "
        "(default: auto, 1 with --dev)",
    )
    # Internal: how the supervisor starts a worker (docs/workers.md).
    serve.add_argument("--worker-ipc-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument(
        "--webhook-url",
        action="append",
        dest="webhook_url",
        metavar="URL",
        help="POST signed room events to this URL (repeatable)",
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="PEM certificate: serve HTTPS/WSS")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--log-format", choices=LOG_FORMATS, help="text (default) or json lines")
    serve.add_argument("--turn-port", metavar="N", help="embedded TURN/STUN port (default 3478)")
    serve.add_argument(
        "--no-turn",
        dest="turn_enabled",
        action="store_false",
        default=None,
        help="do not run the embedded TURN server",
    )

    creds = sub.add_parser(
        "turn-credentials", help="print TURN REST credentials and URLs (JSON) for a user"
    )
    _add_config_flags(creds)
    creds.add_argument("--user", default="relayroom", help="user part of the username")
    creds.add_argument(
        "--ttl", type=int, help="lifetime in seconds (default turn_credential_ttl_s)"
    )

    token = sub.add_parser("token", help="print an access token (JWT) for a room")
    _add_config_flags(token)
    token.add_argument("--room", required=True, help="room name, or '*' with --grant admin=true")
    token.add_argument("--identity", required=True, help="participant identity (JWT sub)")
    token.add_argument("--name", help="display name")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default token_default_ttl_s)")
    token.add_argument("--mode", choices=("sfu", "p2p"), help="mode of the room if it is new")
    token.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="NAME=BOOL",
        help=f"set a grant ({', '.join(GRANT_NAMES)}); repeatable",
    )
    load = sub.add_parser(
        "load-test", help="start synthetic rooms against a server and measure what arrives"
    )
    _add_config_flags(load)
    loadtest_cli.add_arguments(load)
    cli_recording.add_parsers(sub, _add_config_flags)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path, help="TOML configuration file")
    parser.add_argument("--api-secret", help="token signing secret (env RELAYROOM_API_SECRET)")
    parser.add_argument("--data-dir", help="directory for persistent state")
    parser.add_argument(
        "--dev",
        action="store_true",
        default=None,
        help="development mode (generated secret, dev token endpoint)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    for flag, name in SERVE_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "dev", None):
        overrides["dev"] = True
    if getattr(args, "ice_host", None):
        overrides["ice_hosts"] = tuple(args.ice_host)
    if getattr(args, "webhook_url", None):
        overrides["webhook_urls"] = tuple(args.webhook_url)
    return load_config(file=args.config, overrides=overrides)


def parse_grants(items: Sequence[str]) -> Grants:
    values: dict[str, bool] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in GRANT_NAMES:
            raise ConfigError(
                "grant", f"{item!r}: expected NAME=BOOL with NAME in {', '.join(GRANT_NAMES)}"
            )
        text = raw.strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError("grant", f"{item!r}: {raw!r} is not a boolean")
        values[name] = text in ("true", "1", "yes")
    return Grants(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "recording":
        return cli_recording.cmd_recording(args)
    if args.command == "serve" and args.worker_ipc_fd is not None:
        return _cmd_worker(args.worker_ipc_fd)
    try:
        config = config_from_args(args)
        if args.command == "record":
            return cli_recording.cmd_record(config, client_secret(config), args)
        if args.command == "token":
            return _cmd_token(config, args)
        if args.command == "turn-credentials":
            return _cmd_turn_credentials(config, args)
        if args.command == "load-test":
            return loadtest_cli.run(args, lambda: client_secret(config))
        return _cmd_serve(config)
    except (ConfigError, TokenRequestError) as exc:
        print(f"relayroom: {exc}", file=sys.stderr)
        return 2


def client_secret(config: Config) -> str:
    """The secret `token` and `turn-credentials` sign with: the one the server uses.

    A dev server stores its generated secret in the data dir, so without an explicit secret
    these commands read it from there (the same default data dir as `serve`) instead of
    requiring --dev; with --dev and no stored secret one is generated for the server to reuse.
    """
    if config.api_secret or config.dev:
        return resolve_secret(config)
    path = config.data_dir / DEV_SECRET_FILE
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except OSError:
        stored = ""
    if stored:
        return stored
    raise ConfigError(
        "api_secret",
        f"no secret: give the server's (RELAYROOM_API_SECRET or --api-secret), or start a dev "
        f"server first (scripts/serve), which stores one in {path}",
    )


def _cmd_token(config: Config, args: argparse.Namespace) -> int:
    # The SDK's AccessToken: the same checks and claims as an application's tokens.
    token = AccessToken(
        api_secret=client_secret(config),
        room=args.room,
        identity=args.identity,
        name=args.name,
        ttl_s=args.ttl if args.ttl is not None else config.token_default_ttl_s,
        grants=parse_grants(args.grant),
        mode=args.mode,
    )
    print(token.to_jwt())
    return 0


def _cmd_turn_credentials(config: Config, args: argparse.Namespace) -> int:
    ttl = args.ttl if args.ttl is not None else config.turn_credential_ttl_s
    if ttl <= 0:
        raise ConfigError("ttl", "must be a positive number of seconds")
    secret = turn_secret(config, client_secret(config))
    username, password = rest_credentials(secret, args.user.replace(":", "_"), ttl)
    host = public_turn_host(config)
    urls = list(config.turn_urls) or [
        f"turn:{host}:{config.turn_port}?transport=udp",
        f"turn:{host}:{config.turn_port}?transport=tcp",
    ]
    print(json.dumps({"urls": urls, "username": username, "credential": password, "ttl": ttl}))
    return 0


def _cmd_serve(config: Config) -> int:
    setup_logging(config.log_level, config.log_format)
    if config.redis_url:
        require_redis()
    secret = resolve_secret(config)
    ssl_context = _ssl_context(config)
    workers = worker_count(config)
    with asyncio.Runner(loop_factory=_loop_factory(config.event_loop)) as runner:
        if workers > 1:
            return runner.run(_supervise(config, secret, workers))
        return runner.run(_serve(config, secret, ssl_context))


async def _supervise(config: Config, secret: str, workers: int) -> int:
    """`--workers N`: bind the port here, run N workers on it (signaling/supervisor.py)."""
    set_node("supervisor")
    try:
        listener = _listen(config)
    except OSError as exc:
        raise _listen_error(config, exc) from None
    port = int(listener.getsockname()[1])
    supervisor = Supervisor(config, secret, listener, workers)
    return await supervisor.run(display_url(config, port))


def _listen(config: Config) -> socket.socket:
    """The host's listening socket, bound once and inherited by every worker."""
    host = "127.0.0.1" if config.host == "localhost" else config.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, config.port), family=family, backlog=LISTEN_BACKLOG)
    listener.set_inheritable(True)
    return listener


def _cmd_worker(fd: int) -> int:
    """A worker of `--workers N`: settings and secret come from the supervisor over `fd`."""
    link_sock = socket.socket(fileno=fd)
    try:
        setup = read_setup(link_sock)
    except ConfigError as exc:
        print(f"relayroom worker: {exc}", file=sys.stderr)
        return 2
    die_with_parent(setup.supervisor_pid)
    config = setup.config
    setup_logging(config.log_level, config.log_format)
    try:
        ssl_context = _ssl_context(config)
        with asyncio.Runner(loop_factory=_loop_factory(config.event_loop)) as runner:
            return runner.run(_serve_worker(setup, link_sock, ssl_context))
    except ConfigError as exc:
        print(f"relayroom worker: {exc}", file=sys.stderr)
        return 2


async def _serve_worker(
    setup: WorkerSetup, link_sock: socket.socket, ssl_context: ssl.SSLContext | None
) -> int:
    config = setup.config
    link = IpcBus(link_sock, setup.node_id, heartbeat_s=config.worker_heartbeat_s)
    # Without Redis the link to the supervisor is the cluster bus; with Redis it only reports
    # this worker's load and life to the supervisor.
    bus = RedisBus(config.redis_url, node_id=setup.node_id) if config.redis_url else link
    server = Server.build(config, setup.secret, bus=bus)
    set_node(setup.node_id)
    app = create_app(server)
    meter = LoadMeter()
    app[STATS_KEY].add_listener(meter.on_tick)
    registry = server.registry
    shards = server.router.shards if isinstance(server.router, ClusterRouter) else None
    link.load = lambda: meter.report(
        sum(len(room.members) for room in registry.rooms.values())
        + (shards.hosted_count() if shards is not None else 0),  # media members of shards
        len(server.edges),
    )
    setup_workers_api(app, link, setup.secret)
    setup_host_metrics(app, link, setup.index)
    setup_http_forwarding(app, server.registry, bus)
    if bus is not link:

        async def link_lifecycle(app: web.Application) -> Any:
            await link.start()
            yield
            await link.close()

        app.cleanup_ctx.insert(0, link_lifecycle)
    private_host = config.host if config.redis_url else "127.0.0.1"
    listener = socket.socket(fileno=setup.listen_fd)
    runner = await start_serving(
        app,
        config.host,
        config.port,
        ssl_context=ssl_context,
        sock=listener,
        private_port=setup.private_port,
        private_host=private_host,
    )
    private_port = _bound_port(runner, last=True) or setup.private_port
    private_url = _private_url(config, private_host, private_port)
    server.advertise(private_url)
    link.advertise(private_url)  # for the supervisor's /api/workers (with Redis too)
    log.info("worker %d serving (node %s, pid %d)", setup.index, setup.node_id, os.getpid())
    stop = asyncio.Event()
    link.on_supervisor_lost = stop.set
    await _wait_for_signal(stop, force_on_second=False)
    meter.draining = True
    await server.drain()
    await runner.cleanup()
    log.info("worker %d stopped", setup.index)
    return 0


def _private_url(config: Config, host: str, port: int) -> str:
    """The URL the other workers (or, with Redis, the other nodes) reach this worker on."""
    if is_wildcard(host):
        host = advertised_host(config) or "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when chosen or, for ``auto``, installed (it wakes up and sends cheaper)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("event_loop", "uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("tls_cert", f"cannot load certificate/key: {exc}") from None
    return context


async def _serve(config: Config, secret: str, ssl_context: ssl.SSLContext | None) -> int:
    server = Server.build(config, secret)
    set_node(server.bus.node_id)
    log.debug("settings: %s", config.redacted())  # after set_node: this line names the node too
    app = create_app(server)
    try:
        runner = await start_serving(app, config.host, config.port, ssl_context=ssl_context)
    except OSError as exc:
        raise _listen_error(config, exc) from None
    port = _bound_port(runner) or config.port
    url = display_url(config, port)
    server.advertise(url)
    print(f"relayroom {__version__} serving on {url}", flush=True)
    turn = server.turn.server
    if turn is not None and turn.udp_address is not None:
        relay = turn.config.relay_public_host or turn.config.relay_host
        print(f"TURN/STUN on {relay} port {turn.udp_address[1]} (udp, tcp)", flush=True)
    if config.dev:
        print(f"open {url} in a browser (dev mode)", flush=True)
    await _wait_for_signal(asyncio.Event())
    await server.drain()
    await runner.cleanup()
    log.info("stopped")
    return 0


async def _wait_for_signal(stop: asyncio.Event, *, force_on_second: bool = True) -> None:
    """Until SIGTERM or SIGINT (or `stop` is set); a second signal exits at once unless
    `force_on_second` is off (a worker: its supervisor kills it when it must not drain)."""
    loop = asyncio.get_running_loop()
    signalled: list[int] = []  # not stop.is_set(): a worker's stop is set when its supervisor
    # dies, and the SIGTERM that the death also sends it must still drain

    def on_signal(signum: int) -> None:
        if signalled and force_on_second:
            log.warning("second %s: exiting without draining", signal.Signals(signum).name)
            os._exit(1)
        signalled.append(signum)
        hint = " (send it again to force)" if force_on_second else ""
        log.info("%s: draining%s", signal.Signals(signum).name, hint)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await stop.wait()


def _listen_error(config: Config, exc: OSError) -> ConfigError:
    where = f"{config.host}:{config.port}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError("host", f"{config.host} is not an address of this machine")
    if exc.errno == errno.EADDRINUSE:
        return ConfigError("port", f"{where} is in use: choose another with --port N")
    return ConfigError("port", f"cannot listen on {where}: {exc.strerror or exc}")


def _bound_port(runner: web.AppRunner, *, last: bool = False) -> int | None:
    """The first (or `last`: the private site's) bound TCP port."""
    addresses = list(runner.addresses)
    for address in reversed(addresses) if last else addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
