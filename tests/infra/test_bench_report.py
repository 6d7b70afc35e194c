"""`python -m bench --only`: the sections it keeps say which run wrote them."""

from __future__ import annotations

from bench.__main__ import BENCHES, KEPT, earlier_sections, report


def _previous() -> str:
    """A report as a full run wrote it: its Machine table, then two benchmarks' sections."""
    facts = [("date", "2026-12-04 05:03 UTC"), ("commit", "8202460"), ("CPU", "2 cores")]
    text = report(facts, [], quick=False)
    by_name = {bench.name: bench for bench in BENCHES}
    sections = {
        "dispatch": "### (d)\n\nfigures of that run",
        "bridge": f"{KEPT}\n\n### bridge\n\nolder figures",
    }
    for name, body in sections.items():
        bench = by_name[name]
        text += f"\n## {bench.title} (`{bench.module}`)\n\n{body}\n"
    return text


def test_a_section_written_by_that_run_is_marked_with_its_date_and_commit() -> None:
    kept = earlier_sections(_previous(), rerun={"pace"})
    assert kept["dispatch"] == (
        f"{KEPT} (date 2026-12-04 05:03 UTC, commit 8202460)\n\n### (d)\n\nfigures of that run"
    )


def test_a_section_kept_already_keeps_its_own_mark() -> None:
    kept = earlier_sections(_previous(), rerun={"pace"})
    assert kept["bridge"] == f"{KEPT}\n\n### bridge\n\nolder figures"


def test_a_rerun_section_is_not_kept() -> None:
    assert "dispatch" not in earlier_sections(_previous(), rerun={"dispatch"})


def test_without_a_machine_table_the_mark_is_plain() -> None:
    kept = earlier_sections(
        "## Dispatcher against the naive baseline (`bench.dispatch`)\n\nx\n", set()
    )
    assert kept["dispatch"] == f"{KEPT}\n\nx"
