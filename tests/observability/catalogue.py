"""The metrics catalogue in docs/metrics.md, built from the services' `metrics.py` modules.

`python -m tests.observability.catalogue` rewrites the generated part of the doc (between
the BEGIN/END markers); `test_catalogue.py` fails when the committed doc differs, so the
catalogue cannot go stale.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = REPO_ROOT / "docs" / "metrics.md"
BEGIN = "<!-- BEGIN GENERATED: python -m tests.observability.catalogue -->"
END = "<!-- END GENERATED -->"


@dataclass(frozen=True)
class Source:
    """One service's metric definitions: a module, or a class instantiated per process."""

    title: str
    module: str
    factory: str | None = None


SOURCES: tuple[Source, ...] = (
    Source("consumer: intake", "consumer.intake.metrics"),
    Source("consumer: dispatcher", "consumer.dispatch.metrics"),
    Source("webhook_bridge", "webhook_bridge.metrics"),
    Source("projector", "projector.metrics"),
    Source("sandbox", "sandbox.metrics", factory="SandboxMetrics"),
)

# What each metric type exposes, as PromQL sees it (prometheus_client strips `_total`
# from a counter's name and adds it back on the sample).
_SAMPLE_SUFFIX = {"counter": "_total", "gauge": "", "histogram": "", "summary": "", "info": "_info"}


@dataclass(frozen=True)
class Metric:
    name: str  # as queried: counters with `_total`
    type: str
    labels: tuple[str, ...]
    help: str
    source: Source


def _collectors(source: Source) -> Iterator[MetricWrapperBase]:
    module = importlib.import_module(source.module)
    holder: object = getattr(module, source.factory)() if source.factory else module
    for value in vars(holder).values():
        if isinstance(value, MetricWrapperBase):
            yield value


def metrics() -> list[Metric]:
    """Every metric every service defines, in catalogue order."""
    found: list[Metric] = []
    for source in SOURCES:
        for collector in _collectors(source):
            kind = str(collector._type)
            found.append(
                Metric(
                    name=str(collector._name) + _SAMPLE_SUFFIX.get(kind, ""),
                    type=kind,
                    labels=tuple(collector._labelnames),
                    help=" ".join(str(collector._documentation).split()),
                    source=source,
                )
            )
    return found


def _module_path(source: Source) -> str:
    return source.module.replace(".", "/") + ".py"


def render() -> str:
    """The generated block of docs/metrics.md, markers included."""
    lines = [BEGIN, ""]
    all_metrics = metrics()
    for source in SOURCES:
        lines += [
            f"### {source.title} (`{_module_path(source)}`)",
            "",
            "| Metric | Type | Labels | Meaning |",
            "| --- | --- | --- | --- |",
        ]
        for metric in (m for m in all_metrics if m.source == source):
            labels = ", ".join(f"`{label}`" for label in metric.labels) or "none"
            meaning = metric.help.replace("|", "\\|")
            lines.append(f"| `{metric.name}` | {metric.type} | {labels} | {meaning} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def generated_part(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END)
    return text[start : end + len(END)]


def main() -> int:
    text = DOC_PATH.read_text()
    updated = text.replace(generated_part(text), render())
    if updated != text:
        DOC_PATH.write_text(updated)
        print(f"updated {DOC_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
