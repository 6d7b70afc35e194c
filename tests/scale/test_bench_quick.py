"""`python -m bench.scale --quick` runs to its table (10,000 and 100,000 recipients over 20
senders, one consumer): the figures exist and are sane. The targets are judged on the full
run (docs/benchmarks.md), not on a shared CI machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_scale_bench_runs_to_its_table() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--quick", "--timeout", "600"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| configuration"))
    columns = [cell.strip() for cell in lines[start].split("|")[1:-1]]
    end = lines.index("", start)
    rows = lines[start + 2 : end]
    assert [row.split("|")[1].strip() for row in rows] == [
        "10,000 x 1 instance(s)",
        "100,000 x 1 instance(s)",
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        sends_per_second = float(cells[columns.index("sends/s")].replace(",", ""))
        assert sends_per_second > 100, row
        assert float(cells[columns.index("peak RSS MiB")]) < 300, f"peak RSS: {row}"
    assert "The client alone, measured in this run" in run.stdout
    assert "a sender with no ledger" in run.stdout
    assert "Targets (ratios measured in this run)" in run.stdout
