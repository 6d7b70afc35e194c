"""The chaos soak's short variant: every part SIGKILLed at random during a campaign, the
invariants checked from the outside (bench/soak). Minutes in CI, not hours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_short_soak_holds_every_invariant(tmp_path: Path) -> None:
    report = tmp_path / "reliability.md"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--short",
            "--output",
            str(report),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    text = report.read_text()
    assert "**Verdict: PASS.**" in text
    assert "| NO " not in text
    kills = [line for line in text.splitlines() if line.startswith("| consumer-")]
    assert kills, text
