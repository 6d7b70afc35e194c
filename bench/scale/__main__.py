"""`python -m bench.scale [--quick] [--sizes N,...] [--instances K,...] [--history ROWS]`

Campaigns of 10,000, 100,000 and 1,000,000 recipients spread over 20 sender numbers
(tiers 100k and unlimited), the request topic with 6 partitions, 1, 2 and 3 consumer
processes in one group, the sandbox at 20 ms latency with a write budget that does not
bind (so the pipeline, not the limit, is measured); then the largest once more with a
ledger that already holds a history of finished campaigns. Per configuration: intake
time, end-to-end sends/s, CPU seconds per 1,000 sends by process, peak RSS of each
consumer, ledger bytes per recipient, p50/p99 of the send path's statements, and beside
them the HTTP client's ceiling (bench.dispatch figure (d)) and a sender with no ledger
(the same client alone against a sandbox like the pipeline's, on the same cores), both
measured just before each configuration, since the machine's speed drifts. `--quick`:
10,000 and 100,000 recipients, one instance, no history (the CI test).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from dataclasses import dataclass

from bench.dispatch import ClientRun, http_ceiling
from bench.harness import ROOT, table
from bench.private_stack import private_stack
from bench.scale.run import Config, Figures, run_config, sandbox_config, senders
from runtime.logs import configure_logging

# The processes whose CPU per send is measured.
PARTS = ("consumer", "postgresql", "sandbox")
# What the pipeline may have in flight: 20 numbers at their tier's 50.
NO_LEDGER_IN_FLIGHT = 1_000


@dataclass(frozen=True, slots=True)
class Ceilings:
    """The client alone, measured in the same run as the pipeline: figure (d), where the
    client and the sandbox have a core each, and a sender with no ledger against this
    run's own sandbox on the cores the pipeline has."""

    http: ClientRun
    no_ledger: ClientRun


async def measure_ceilings(seconds: float) -> Ceilings:
    http = await http_ceiling(seconds)
    no_ledger = await http_ceiling(
        seconds,
        sandbox_config(),
        in_flight=NO_LEDGER_IN_FLIGHT,
        senders=senders(),
        sandbox_cpu=None,
    )
    return Ceilings(http, no_ledger)


@dataclass(frozen=True, slots=True)
class Measured:
    """One configuration's figures beside the ceilings measured just before it: the
    machine's speed drifts over a run of an hour, so each ratio is taken against the
    ceiling of its own moment."""

    figures: Figures
    ceilings: Ceilings


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def plan(args: argparse.Namespace) -> list[Config]:
    sizes = (
        _ints(args.sizes)
        if args.sizes
        else ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    )
    instances = _ints(args.instances) if args.instances else ([1] if args.quick else [1, 2, 3])
    configs = [Config(size, k) for size in sizes for k in instances]
    history = 0 if args.quick else args.history
    if history:
        configs.append(Config(max(sizes), 1, history))
    return configs


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.1f}"


def cpu_bound(f: Figures, cores: int) -> float:
    """Sends/s the machine could sustain at this run's CPU per send, every core busy
    with the consumer(s), PostgreSQL and the sandbox: what the pipeline shares the
    cores with, where the HTTP client's ceiling has a core to itself."""
    per_send = sum(f.cpu_per_1000.get(part, math.nan) for part in PARTS) / 1000
    return cores / per_send if per_send > 0 else math.nan


def report(results: list[Measured]) -> str:
    cores = os.cpu_count() or 1
    rows = []
    for f, ceilings in ((m.figures, m.ceilings) for m in results):
        ceiling = ceilings.http.rate
        bound = cpu_bound(f, cores)
        statements = " / ".join(
            f"{name} {_ms(p50)}|{_ms(p99)}" for name, (p50, p99) in f.statements.items()
        )
        rows.append(
            (
                f.config.label,
                round(f.intake_seconds, 1),
                round(f.sends_per_second),
                round(ceiling),
                f"{f.sends_per_second / ceiling:.0%}",
                round(ceilings.no_ledger.rate),
                f"{f.sends_per_second / ceilings.no_ledger.rate:.0%}",
                round(bound),
                f"{f.sends_per_second / bound:.0%}",
                round(f.cpu_per_1000.get("consumer", math.nan), 3),
                round(f.cpu_per_1000.get("postgresql", math.nan), 3),
                round(f.cpu_per_1000.get("sandbox", math.nan), 3),
                " ".join(f"{r:.0f}" for r in f.peak_rss_mib),
                round(f.bytes_per_recipient),
                statements,
                "-" if f.owned_spread is None else f"{f.owned_spread[0]}-{f.owned_spread[1]}",
                "-" if f.takeover_seconds is None else f"{f.takeover_seconds:.1f}",
            )
        )
    rates = [m.ceilings.http.rate for m in results]
    text = table(
        "Scale: 20 senders, 20 ms API latency; HTTP client ceiling "
        f"{min(rates):,.0f}-{max(rates):,.0f} sends/s (measured before each configuration)",
        [
            "configuration",
            "intake s",
            "sends/s",
            "ceiling sends/s",
            "of ceiling",
            "no-ledger sender sends/s",
            "of no-ledger sender",
            f"CPU-bound sends/s ({cores} cores)",
            "of CPU-bound",
            "consumer CPU-s/1k",
            "PostgreSQL CPU-s/1k",
            "sandbox CPU-s/1k",
            "peak RSS MiB",
            "ledger B/recipient",
            "statement p50|p99 ms",
            "busy senders owned min-max",
            "takeover s",
        ],
        rows,
    )
    return text + "\n" + ceilings_table(results, cores) + "\n" + targets(results)


def ceilings_table(results: list[Measured], cores: int) -> str:
    rows = []
    for m in results:
        for name, run in (
            ("HTTP client ceiling", m.ceilings.http),
            ("no-ledger sender", m.ceilings.no_ledger),
        ):
            rows.append(
                (
                    m.figures.config.label,
                    name,
                    round(run.rate),
                    round(run.client_cpu_per_1000, 3),
                    round(run.sandbox_cpu_per_1000, 3),
                    f"{run.busy(run.client_cpu_per_1000):.2f}",
                    f"{run.busy(run.sandbox_cpu_per_1000):.2f}",
                )
            )
    legend = (
        "HTTP client ceiling: figure (d), the dispatcher's client alone with 50 in flight "
        "against a sandbox with no latency, the sandbox on CPU 0 and the client on the "
        f"other. No-ledger sender: the same client, {NO_LEDGER_IN_FLIGHT:,} in flight over "
        "the 20 numbers, against a sandbox configured as the pipeline's (20 ms), on the "
        f"{cores} cores it shares with that sandbox, as the pipeline does. Both measured just "
        "before the configuration named; a side whose cores busy is near 1.00 is the one "
        "that bound the rate."
    )
    return table(
        "The client alone, measured in this run",
        [
            "before",
            "client alone",
            "sends/s",
            "client CPU-s/1k",
            "sandbox CPU-s/1k",
            "client cores busy",
            "sandbox cores busy",
        ],
        rows,
    ) + ("\n" + legend + "\n")


def targets(measured: list[Measured]) -> str:
    """The issue's targets, as ratios within this run."""
    results = [m.figures for m in measured]
    by = {(f.config.recipients, f.config.instances, f.config.history_rows): f for f in results}
    smallest = min(results, key=lambda f: (f.config.recipients, f.config.instances))
    largest = max(
        (f for f in results if not f.config.history_rows),
        key=lambda f: (f.config.recipients, -f.config.instances),
    )
    base = smallest.cpu_per_1000["consumer"] + smallest.cpu_per_1000["postgresql"]
    rows = []

    def cost(f: Figures) -> float:
        return f.cpu_per_1000["consumer"] + f.cpu_per_1000["postgresql"]

    rows.append(
        (
            f"CPU per 1,000 sends (consumer + PostgreSQL) at {largest.config.recipients:,} "
            f"vs {smallest.config.recipients:,}",
            "<= 1.3x",
            f"{cost(largest) / base:.2f}x",
        )
    )
    for f in results:
        if f.config.history_rows:
            plain = by.get((f.config.recipients, 1, 0))
            if plain:
                rows.append(
                    ("... with the history present", "<= 1.3x", f"{cost(f) / cost(plain):.2f}x")
                )
    rows.append(
        (
            f"peak consumer RSS at {largest.config.recipients:,}",
            "< 300 MiB",
            f"{max(largest.peak_rss_mib):.0f} MiB",
        )
    )
    # Judged at the largest size, where the target applies, not at the run's best size;
    # each configuration against the ceilings measured just before it.
    at_size = max(
        (
            m
            for m in measured
            if m.figures.config.recipients == largest.config.recipients
            and not m.figures.config.history_rows
        ),
        key=lambda m: m.figures.sends_per_second / m.ceilings.http.rate,
    )
    sends = at_size.figures.sends_per_second
    ratio = sends / at_size.ceilings.http.rate
    rows.append(
        (
            f"end-to-end sends/s vs the HTTP client's ceiling at {largest.config.recipients:,}",
            ">= 60%",
            f"{ratio:.0%}{'' if ratio >= 0.6 else ' (NOT met)'}: {sends:,.0f} of "
            f"{at_size.ceilings.http.rate:,.0f}/s ({at_size.figures.config.label})",
        )
    )
    no_ledger = at_size.ceilings.no_ledger.rate
    rows.append(
        (
            "... vs a sender with no ledger on the same cores, at the same moment",
            "(context)",
            f"{sends / no_ledger:.0%} of {no_ledger:,.0f}/s",
        )
    )
    # What one instance would send with a core to itself (the API and PostgreSQL
    # elsewhere, as deployed), at the CPU per send it spent here.
    per_core = 1000 / at_size.figures.cpu_per_1000["consumer"]
    rows.append(
        (
            "... one consumer core's worth at that CPU per send (the API and PostgreSQL "
            "on other cores)",
            "(context)",
            f"{per_core:,.0f}/s = {per_core / at_size.ceilings.http.rate:.0%} of the ceiling",
        )
    )
    best = max(
        (f for f in results if f.config.recipients == largest.config.recipients),
        key=lambda f: f.sends_per_second,
    )
    cores = os.cpu_count() or 1
    rows.append(
        (
            f"... what this machine's {cores} cores allow at the measured CPU per send "
            f"({best.config.label})",
            "(context)",
            f"{best.sends_per_second / cpu_bound(best, cores):.0%} of "
            f"{cpu_bound(best, cores):,.0f}/s",
        )
    )
    for f in results:
        if f.owned_spread and f.config.instances > 1:
            fair = f.busy_senders / f.config.instances
            low, high = f.owned_spread
            ok = low >= math.floor(fair) - 1 and high <= math.ceil(fair) + 1
            rows.append(
                (
                    f"ownership balanced, {f.config.label}",
                    f"each within one of {f.busy_senders}/{f.config.instances}",
                    f"{low}-{high} ({'ok' if ok else 'NOT met'})",
                )
            )
        if f.takeover_seconds is not None:
            rows.append(
                (
                    f"takeover after SIGKILL, {f.config.label}",
                    "< 10 s",
                    f"{f.takeover_seconds:.1f} s",
                )
            )
    return table("Targets (ratios measured in this run)", ["target", "goal", "measured"], rows)


async def main(args: argparse.Namespace) -> int:
    configs = plan(args)
    state = ROOT / ".run" / "scale" / time.strftime("%Y%m%d-%H%M%S")
    log_dir = state / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    async with private_stack(state, {}, kafka_heap="1g") as stack:
        for config in configs:
            print(f"scale: {config.label}", file=sys.stderr, flush=True)
            ceilings = await measure_ceilings(3.0 if args.quick else 5.0)
            takeover = config.instances > 1 and config.recipients >= 100_000
            figures = await run_config(
                stack, config, log_dir, takeover=takeover, within=args.timeout
            )
            results.append(Measured(figures, ceilings))
    print(report(results))
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k, one instance")
    parser.add_argument("--sizes", help="comma-separated recipient counts")
    parser.add_argument("--instances", help="comma-separated consumer counts")
    parser.add_argument("--history", type=int, default=10_000_000, help="rows of history (0: none)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    return parser.parse_args(argv)


if __name__ == "__main__":
    configure_logging("ERROR")
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
