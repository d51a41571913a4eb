"""`GET /metrics` of a host's workers in one scrape (`relayroom serve --workers N`).

A scrape on the shared port lands on any worker. That worker answers for the whole host: its
own metrics and every other worker's (fetched from their private URLs with `?scope=local`),
each sample labelled `worker="<index>"`, so a query sums them (`sum by (kind) (...)`) or looks
at one worker. A worker that does not answer within the timeout is left out of that scrape.
`?scope=local` returns the answering worker's own metrics, unlabelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .bus import BusUnavailable
from .ipc_bus import IpcBus
from .metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0


def merge(parts: Iterable[tuple[str, str]]) -> bytes:
    """Prometheus text of several workers as one exposition: (worker label, text) pairs."""
    families: dict[str, Metric] = {}
    for worker, text in parts:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples += [
                Sample(s.name, {**s.labels, "worker": worker}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            ]

    class _Merged:
        def collect(self) -> Iterator[Metric]:
            return iter(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())  # type: ignore[arg-type]
    data: bytes = generate_latest(registry)
    return data


def setup_host_metrics(app: web.Application, link: IpcBus, index: int) -> None:
    """Answer `/metrics` for every worker of the host (see the module doc)."""
    client: dict[str, aiohttp.ClientSession] = {}

    async def fetch(session: aiohttp.ClientSession, url: str) -> str | None:
        try:
            async with session.get(url.rstrip("/") + "/metrics?scope=local") as response:
                return await response.text() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("metrics of the worker at %s: %s", url, exc)
            return None

    @web.middleware
    async def host_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/metrics" or request.query.get("scope") == "local":
            return await handler(request)
        local = await handler(request)
        if not isinstance(local, web.Response) or local.body is None:
            return local
        try:
            workers = await link.workers()
        except BusUnavailable:
            workers = []
        others = [
            (str(w["index"]), str(w["url"]))
            for w in workers
            if w.get("node") != link.node_id and w.get("url")
        ]
        if "session" not in client:
            client["session"] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
            )
        texts = await asyncio.gather(*(fetch(client["session"], url) for _, url in others))
        body = local.body if isinstance(local.body, bytes) else b""
        parts = [(str(index), body.decode())]
        parts += [(w, t) for (w, _), t in zip(others, texts, strict=True) if t is not None]
        return web.Response(
            body=merge(parts), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
        )

    async def lifecycle(app: web.Application) -> Any:
        yield
        if "session" in client:
            await client["session"].close()

    app.middlewares.append(host_metrics)
    app.cleanup_ctx.append(lifecycle)
