"""The soak's report: printed, and written to docs/reliability.md by the run itself."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime

from bench.harness import table
from bench.soak.processes import ROOT
from bench.soak.run import Outcome


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(outcome: Outcome, command: str) -> str:
    plan = outcome.plan
    verdict = "PASS" if outcome.holds else "FAIL"
    lines = [
        "# Reliability: the chaos soak",
        "",
        f"Written by `{command}` (commit {_commit()}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {platform.machine()}, "
        f"Python {platform.python_version()}). Nothing here is typed by hand.",
        "",
        f"**Verdict: {verdict}.** {plan.recipients:,} recipients in {plan.senders} campaigns on "
        f"{plan.senders} sender numbers, published in chunks of {plan.chunk_size} over the first "
        f"third of {plan.minutes:g} minutes of chaos; two consumer instances, the webhook bridge "
        "and the projector, their own Kafka broker and PostgreSQL. A kill every "
        f"{plan.between_kills[0]:g}-{plan.between_kills[1]:g} s (SIGKILL, down "
        f"{plan.down[0]:g}-{plan.down[1]:g} s, then started again); the sandbox's write budget "
        f"{plan.write_per_minute:,}/min. Chaos lasted {outcome.chaos_seconds:.0f} s; the system "
        f"then drained to terminal in {outcome.drain_seconds:.0f} s"
        + ("" if outcome.terminal else " **without reaching terminal**")
        + ".",
        "",
        "How to run it: `.venv/bin/python -m bench.soak` (10 minutes, 20,000 recipients; "
        "`--help` for the knobs). The short variant runs in CI as "
        "`tests/soak/test_soak.py`.",
        "",
    ]
    lines.append(
        table(
            "Invariants, checked from the outside",
            ["invariant", "holds", "figure"],
            [(c.name, "yes" if c.holds else "NO", c.figure) for c in outcome.checks],
        )
    )
    lines.append(
        table(
            "Kills per service",
            ["part", "SIGKILLs", "exits on its own (restarted)", "seconds down"],
            [(name, k, u, round(d, 1)) for name, (k, u, d) in outcome.tallies.items()],
        )
    )
    faults = dict(outcome.faults)
    forged = ", ".join(f"{s}: {n}" for s, n in sorted(outcome.forgeries.answers.items()))
    faults_rows = [(name, n) for name, n in faults.items()]
    lines.append(table("Faults injected", ["fault", "count"], faults_rows))
    lines.append(f"Forged webhooks were answered: {forged or 'none sent'}.\n")
    outcome_rows = sorted(outcome.outcomes.items(), key=lambda item: -item[1])
    lines.append(
        table("Where every recipient ended (ledger)", ["outcome", "recipients"], outcome_rows)
    )
    lines.append(
        f"The sandbox accepted {outcome.accepted_messages:,} messages; "
        f"{outcome.published.chunks} chunks were published "
        f"({outcome.published.publish_retries} publications retried while the broker was down).\n"
    )
    return "\n".join(lines)
