"""The metrics catalogue, the alert rules and the dashboard agree with the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY

from tests.observability import dashboard
from tests.observability.catalogue import DOC_PATH, END, REPO_ROOT, generated_part, metrics, render
from tests.observability.promconfig import (
    COMPOSE_TARGETS,
    RULE_TESTS_PATH,
    RULES_PATH,
    write_local_config,
)

PREFIXES = {
    "consumer.intake.metrics": "broadcast_intake_",
    "consumer.dispatch.metrics": "broadcast_dispatch_",
    "webhook_bridge.metrics": "broadcast_bridge_",
    "projector.metrics": "broadcast_projector_",
    "sandbox.metrics": "sandbox_",
}
# Personal data or unbounded ids: never a label (design.md, conventions.md 11).
FORBIDDEN_LABELS = {"phone", "recipient", "campaign", "campaign_id", "message_id", "wamid"}
METRIC_NAME = re.compile(r"\b(?:broadcast|sandbox)_[a-z0-9_]*[a-z0-9]\b")


def test_catalogue_matches_the_code() -> None:
    assert generated_part(DOC_PATH.read_text()) == render(), (
        "docs/metrics.md is stale: run `.venv/bin/python -m tests.observability.catalogue`"
    )


def test_every_registered_broadcast_metric_is_catalogued() -> None:
    """A metric defined outside a `metrics.py` module would escape the catalogue."""
    services = ("consumer.app", "consumer.dispatch.dispatcher", "webhook_bridge.service")
    for module in (*services, "projector.service", "sandbox.server"):
        importlib.import_module(module)
    catalogued = {
        m.name.removesuffix("_total") if m.type == "counter" else m.name for m in metrics()
    }
    registered = {f.name for f in REGISTRY.collect() if f.name.startswith("broadcast_")}
    assert registered <= catalogued, sorted(registered - catalogued)


def test_metric_names_follow_the_conventions() -> None:
    for metric in metrics():
        assert metric.name.startswith(PREFIXES[metric.source.module]), metric
        assert not FORBIDDEN_LABELS & set(metric.labels), metric
        assert metric.help, metric
        if metric.type == "counter":
            assert metric.name.endswith("_total"), metric
        if metric.type == "histogram":
            assert metric.name.endswith("_seconds"), metric


def _known_series() -> set[str]:
    known: set[str] = set()
    for metric in metrics():
        known.add(metric.name)
        base = metric.name.removesuffix("_total")
        if metric.type in {"counter", "histogram"}:
            known.add(f"{base}_created")
        if metric.type == "histogram":
            known |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return known


def _referenced(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def test_alerts_dashboard_and_docs_name_only_real_metrics() -> None:
    known = _known_series()
    doc = DOC_PATH.read_text()
    sources = {
        "alerts.yml": RULES_PATH.read_text(),
        "alerts.test.yml": RULE_TESTS_PATH.read_text(),
        "dashboard": "\n".join(dashboard.queries(dashboard.load())),
        "docs/metrics.md (hand-written part)": doc.replace(generated_part(doc), ""),
        "docs/deploy.md": (REPO_ROOT / "docs" / "deploy.md").read_text(),
    }
    for name, text in sources.items():
        unknown = _referenced(text) - known
        assert not unknown, f"{name} names metrics no service defines: {sorted(unknown)}"


def test_alert_rules_cover_the_operator_cases() -> None:
    """The cases issue 7 names each have an alert on the metric that shows them."""
    alerts: dict[str, str] = {}
    for chunk in RULES_PATH.read_text().split("- alert: ")[1:]:
        name, _, rest = chunk.partition("\n")
        alerts[name.strip()] = rest[rest.index("expr:") : rest.index("labels:")]
    expected = {
        "BroadcastQuotaNearlyUsed": "broadcast_dispatch_quota_limit",
        "BroadcastSenderStopped": "broadcast_dispatch_stopped_senders",
        "BroadcastStopped": "broadcast_dispatch_stops_total",
        "BroadcastDeadLettersGrowing": "broadcast_intake_dead_letters_total",
        "BroadcastIntakeStalled": "broadcast_intake_consumer_lag",
        "BroadcastDispatcherStalled": "broadcast_dispatch_last_progress_timestamp_seconds",
        "BroadcastWebhookSignatureFailures": "broadcast_bridge_signature_failures_total",
        "BroadcastProjectorLag": "broadcast_projector_lag_records",
        "BroadcastBridgeUnavailable": 'outcome="unavailable"',
        "BroadcastTargetDown": "up == 0",
    }
    for alert, needle in expected.items():
        assert alert in alerts, alert
        assert needle in alerts[alert], (alert, alerts[alert])
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS_PATH.read_text()))
    assert set(expected) <= tested, sorted(set(expected) - tested)


def test_dashboard_is_grafana_json() -> None:
    board = dashboard.load()
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 36  # Grafana 10.0 and later
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard.panels(board))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    titles = {p["title"] for p in panels}
    for wanted in (
        "Sends by outcome",
        "Quota used vs limit",
        "In flight",
        "Rate-limit waits and 429s",
        "Retries by code",
        "Deferred to a later window",
        "Stops",
        "Request events",
        "Dead letters by reason",
        "Bridge requests by outcome",
        "Produce latency",
        "Status events",
    ):
        assert wanted in titles, wanted


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    datasource = dashboard.GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    provider = dashboard.GRAFANA_DIR / "provisioning" / "dashboards" / "broadcast.yml"
    assert "url: http://prometheus:9090" in datasource.read_text()
    assert "uid: prometheus" in datasource.read_text()
    variable = next(v for v in dashboard.load()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == "prometheus"
    assert "path: /var/lib/grafana/dashboards" in provider.read_text()


def test_local_config_renders_every_job_on_loopback(tmp_path: Path) -> None:
    ports = {job: 10_000 + n for n, job in enumerate(COMPOSE_TARGETS)}
    text = write_local_config(tmp_path, ports).read_text()
    for job, port in ports.items():
        assert f"job_name: {job}" in text
        assert f"- 127.0.0.1:{port}\n" in text
    assert "scrape_interval: 1s" in text
    assert (tmp_path / RULES_PATH.name).read_text() == RULES_PATH.read_text()


def test_catalogue_doc_has_one_generated_block() -> None:
    text = DOC_PATH.read_text()
    assert text.count(END) == 1
