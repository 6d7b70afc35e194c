"""The provisioned Grafana dashboard's queries, for checks against the catalogue and Prometheus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.observability.catalogue import REPO_ROOT

GRAFANA_DIR = REPO_ROOT / "compose" / "grafana"
DASHBOARD_PATH = GRAFANA_DIR / "dashboards" / "broadcast.json"

# Grafana's built-in and dashboard variables, as a Prometheus query can take them.
_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$sender": ".*"}


def load(path: Path = DASHBOARD_PATH) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every panel target's PromQL, exactly as written (Grafana variables included)."""
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def runnable(query: str) -> str:
    """`query` with Grafana's variables replaced, so that Prometheus can run it."""
    for name, value in _VARIABLES.items():
        query = query.replace(name, value)
    return query
