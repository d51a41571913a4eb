"""docs/grafana-dashboard.json queries only what a real server exports on /metrics."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import WsClient
from tests.sdk.serve import ServeProcess
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
FUNCTIONS = {"sum", "min", "max", "avg", "count", "rate", "irate", "increase"}
FUNCTIONS |= {"histogram_quantile", "abs", "clamp_min", "topk"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
KEYWORDS |= {"unless", "bool", "offset"}
PROMETHEUS_LABELS = {"instance", "job"}  # added by the scraper


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses. Enough PromQL for dashboards: strings,
    ranges, matchers and grouping clauses are cut out, calls must be known functions."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", "", text)
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for group in re.findall(grouping, text):
        labels |= {name.strip() for name in group.split(",") if name.strip()}
    text = re.sub(grouping, "", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            assert word in FUNCTIONS, f"unknown function {word!r} in {expr!r}"
        elif word not in KEYWORDS:
            names.add(word)
    return names, labels


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target, and the template variables' queries."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))
            walk(panel.get("panels", []))

    walk(board["panels"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            # Grafana's label_values(metric, label) is `count by (label) (metric)` in PromQL.
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert match, query
            found.append((f"${variable['name']}", f"count by ({match[2]}) ({match[1]})"))
    return found


async def scrape_after_a_call(tmp_path: Path) -> str:
    server = ServeProcess(tmp_path)
    async with server, aiohttp.ClientSession() as http:
        alice = WsClient(await http.ws_connect(server.url + "ws"))
        bob = WsClient(await http.ws_connect(server.url + "ws"))
        await alice.join("demo", "alice")
        await bob.join("demo", "bob", can_publish=False)
        await bob.send({"type": "nonsense"})  # one protocol error, for relayroom_errors_total
        await bob.expect("error")
        subscriber = WsSubscriber(bob)
        pc, _ = await publish(alice)
        try:
            await bob.expect("track_published", 10)
            await subscriber.answer_next_offer()
            assert await eventually(
                lambda: any(len(c) >= 10 for c in subscriber.counters.values()), 20
            )
            await asyncio.sleep(1.5)  # stats ticks feed the counters
            async with http.get(server.url + "metrics") as response:
                assert response.status == 200
                return await response.text()
        finally:
            await subscriber.close()
            await pc.close()  # type: ignore[attr-defined]
            await alice.close()
            await bob.close()


@pytest.mark.slow
async def test_every_dashboard_query_names_exported_metrics_and_labels(tmp_path):
    text = await scrape_after_a_call(tmp_path)
    exported: set[str] = set()
    labels = set(PROMETHEUS_LABELS)
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exported.add(sample.name)
            labels |= set(sample.labels)
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    # The scrape saw the call: the dashboard is checked against live series.
    assert values[("relayroom_forwarded_packets_total", (("kind", "video"),))] > 0
    assert values[("relayroom_errors_total", (("code", "unknown_type"),))] == 1

    queries = dashboard_queries()
    assert len(queries) >= 20
    used: set[str] = set()
    for title, expr in queries:
        names, expr_labels = parse_promql(expr)
        assert names, (title, expr)
        assert names <= exported, (title, expr, names - exported)
        assert expr_labels <= labels, (title, expr, expr_labels - labels)
        used |= names
    # What the dashboard is for: rooms, participants, forwarding, bitrate, loss, TURN, errors.
    for needed in (
        "relayroom_rooms",
        "relayroom_participants",
        "relayroom_forwarded_packets_total",
        "relayroom_forwarded_bytes_total",
        "relayroom_packet_loss_ratio_bucket",
        "relayroom_turn_allocations",
        "relayroom_errors_total",
    ):
        assert needed in used, needed


@pytest.mark.parametrize(
    "expr, names, labels",
    [
        (
            'sum by (kind) (rate(relayroom_forwarded_packets_total{instance=~"$instance"}[5m]))',
            {"relayroom_forwarded_packets_total"},
            {"kind", "instance"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(relayroom_rtt_seconds_bucket[1m])))",
            {"relayroom_rtt_seconds_bucket"},
            {"le"},
        ),
        (
            "8 * sum(rate(relayroom_nope_total[5m])) / relayroom_x",
            {"relayroom_nope_total", "relayroom_x"},
            set(),
        ),
    ],
)
def test_promql_reader_finds_metric_and_label_names(expr, names, labels):
    assert parse_promql(expr) == (names, labels)


def test_panels_are_well_formed():
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
