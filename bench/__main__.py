"""`make bench`: every benchmark of the project, one after the other, into docs/benchmarks.md.

    .venv/bin/python -m bench [--quick] [--only NAME ...] [--output FILE]

Each benchmark runs as its own process (`python -m bench.<name>`), in sequence so that
none competes with another for the machine's cores. A benchmark that fails or times
out is reported with the tail of its error output, and the next one still runs; the
exit code is then 1. Their printed tables are collected, printed again at the end,
and written to `docs/benchmarks.md` with the machine (cores, memory, CPU model),
the Python, Kafka and PostgreSQL versions, the commit and the date. Nothing in that
file is typed by hand. `--quick` runs smaller sizes (the dispatcher's own `--quick`,
fewer chunks, requests, events and seconds for the others), for a smoke test.
`--only NAME` runs some of them and keeps the other sections of the existing file, each
marked as kept from an earlier run (the full `scale` run takes about an hour).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import asyncpg

from bench.harness import ROOT, dev_stack
from devstack.kafka import KAFKA_VERSION


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    quick_args: tuple[str, ...]

    @property
    def module(self) -> str:
        return f"bench.{self.name}"

    def command(self, quick: bool) -> list[str]:
        return [sys.executable, "-m", self.module, *(self.quick_args if quick else ())]

    def summary(self) -> str:
        """The first paragraph of the benchmark's docstring, without its usage line."""
        module = ROOT / "bench" / f"{self.name}.py"
        if not module.exists():
            module = ROOT / "bench" / self.name / "__main__.py"
        doc = ast.get_docstring(ast.parse(module.read_text())) or ""
        usage = (".venv/", "`python -m")
        paragraphs = [p for p in doc.split("\n\n") if not p.lstrip().startswith(usage)]
        return " ".join(paragraphs[0].split()) if paragraphs else ""


BENCHES = (
    Bench("dispatch", "Dispatcher against the naive baseline", ("--quick",)),
    Bench("intake", "Intake: request chunks into the ledger", ("--chunks", "4")),
    Bench("bridge", "Webhook bridge", ("--requests", "5000", "--seconds", "5")),
    Bench("projector", "Projector: live fold and rebuild", ("--events", "100000")),
    Bench("sandbox_throughput", "Kirim sandbox throughput", ("--seconds", "3")),
    Bench("scale", "Scale: 10k to 1M recipients, 1-3 instances, with history", ("--quick",)),
    Bench("pace", "The client alone at the pipeline's pace", ("--seconds", "2")),
    Bench(
        "priority",
        "Priority lanes: a transactional campaign in the middle of a bulk one",
        ("--quick",),
    ),
    Bench(
        "console",
        "Operator console: page latency with a 1M-recipient campaign",
        ("--recipients", "100000", "--requests", "30"),
    ),
)
TIMEOUT_SECONDS = 30 * 60
# The full scale run sends 4M messages and seeds a 10M-row history.
SLOW_TIMEOUT_SECONDS = {"scale": 3 * 3600}


@dataclass
class Outcome:
    bench: Bench
    command: list[str]
    seconds: float
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def result(self) -> str:
        if self.returncode is None:
            return f"timed out after {TIMEOUT_SECONDS // 60} min"
        return "ok" if self.ok else f"failed (exit {self.returncode})"


def run(bench: Bench, quick: bool) -> Outcome:
    command = bench.command(quick)
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    timeout = SLOW_TIMEOUT_SECONDS.get(bench.name, TIMEOUT_SECONDS)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        returncode: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        returncode = None
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        raise
    return Outcome(bench, command, time.monotonic() - started, returncode, stdout, stderr)


# --- the machine ------------------------------------------------------------------------


def _proc_field(path: str, name: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


async def _postgres_version(url: str) -> str:
    connection = await asyncpg.connect(url, timeout=15)
    try:
        version: str = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return version


def machine() -> list[tuple[str, str]]:
    stack = dev_stack()
    memory = _proc_field("/proc/meminfo", "MemTotal") or "? kB"
    cpu = (
        _proc_field("/proc/cpuinfo", "model name")
        or _proc_field("/proc/cpuinfo", "Model")
        or platform.processor()
        or "unknown"
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain"):
        commit += " with uncommitted changes"
    postgres = asyncio.run(_postgres_version(stack.postgres.url()))
    return [
        ("date", f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"),
        ("commit", commit),
        ("CPU", f"{cpu}: {os.cpu_count()} logical CPUs, {usable} usable (nproc)"),
        ("memory", f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB (MemTotal)"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Kafka", f"{KAFKA_VERSION}, one KRaft node (python -m devstack)"),
        ("PostgreSQL", f"{postgres} (python -m devstack, fsync=off)"),
    ]


# --- the report -------------------------------------------------------------------------


def as_markdown(output: str) -> str:
    """A benchmark's output: tables and headings kept (one level down), other text fenced."""
    blocks: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            blocks.append("```text\n" + "\n".join(plain) + "\n```")
            plain.clear()

    markdown: list[str] = []
    for line in output.rstrip().splitlines():
        if line.startswith(("|", "#")) or not line.strip():
            flush()
            markdown.append("#" + line if line.startswith("#") else line)
        else:
            if markdown:
                blocks.append("\n".join(markdown).strip("\n"))
                markdown.clear()
            plain.append(line)
    flush()
    if markdown:
        blocks.append("\n".join(markdown).strip("\n"))
    return "\n\n".join(block for block in blocks if block)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _heading(bench: Bench) -> str:
    return f"## {bench.title} (`{bench.module}`)"


KEPT: Final = "*kept from an earlier run*"


def earlier_sections(previous: str, rerun: set[str]) -> dict[str, str]:
    """The sections of an earlier report for the benchmarks not run this time (`--only`),
    by name, so that updating one benchmark keeps the others' figures. A section that
    report wrote itself is marked with that run's date and commit, from its Machine
    table, since this run's Machine table will not be theirs; one kept already keeps
    its mark."""
    facts = dict(re.findall(r"^\| (date|commit) \| (.+) \|$", previous, re.MULTILINE))
    run = ", ".join(f"{key} {facts[key]}" for key in ("date", "commit") if key in facts)
    mark = f"{KEPT} ({run})" if run else KEPT
    kept: dict[str, str] = {}
    headings = {_heading(bench): bench.name for bench in BENCHES}
    current: str | None = None
    lines: list[str] = []
    for line in [*previous.splitlines(), "## end"]:
        if line.startswith("## "):
            if current is not None and current not in rerun:
                section = "\n".join(lines).strip("\n")
                kept[current] = section if section.startswith(KEPT) else f"{mark}\n\n{section}"
            current, lines = headings.get(line), []
            continue
        if current is not None:
            lines.append(line)
    return kept


def report(
    facts: list[tuple[str, str]],
    outcomes: list[Outcome],
    quick: bool,
    earlier: dict[str, str] | None = None,
) -> str:
    mode = "quick (`--quick`: smaller runs)" if quick else "full"
    earlier = earlier or {}
    kept_note = (
        f" Sections marked {KEPT} were not run this time (`--only`) and keep the figures, "
        "and where known the date and commit, of the run that wrote them."
        if earlier
        else ""
    )
    parts = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python -m bench`); every figure below is from "
        f"that run, none typed by hand. Mode: {mode}. Each benchmark ran alone, one after "
        f"the other, against the local dev stack on loopback.{kept_note}",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts),
        "",
        "## Runs",
        "",
        "| benchmark | command | result | seconds |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        command = " ".join(["python", *o.command[1:]])
        parts.append(f"| {o.bench.title} | `{command}` | {o.result} | {o.seconds:.0f} |")
    ran = {o.bench.name: o for o in outcomes}
    for bench in BENCHES:
        if (this := ran.get(bench.name)) is not None:
            parts += ["", _heading(bench), "", bench.summary(), ""]
            if this.stdout.strip():
                parts.append(as_markdown(this.stdout))
            if not this.ok:
                parts += ["", f"{this.result}; the end of its error output:", ""]
                parts.append("```text\n" + _tail(this.stderr or this.stdout) + "\n```")
        elif bench.name in earlier:
            parts += ["", _heading(bench), "", earlier[bench.name]]
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[bench.name for bench in BENCHES],
        help="run only these benchmarks",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the report file"
    )
    args = parser.parse_args()
    facts = machine()
    outcomes = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        print(f"running python {' '.join(bench.command(args.quick)[1:])} ...", flush=True)
        outcome = run(bench, args.quick)
        print(f"  {outcome.result} in {outcome.seconds:.0f}s", flush=True)
        if not outcome.ok:
            print(_tail(outcome.stderr or outcome.stdout), file=sys.stderr, flush=True)
        outcomes.append(outcome)
    earlier = (
        earlier_sections(args.output.read_text(), set(args.only))
        if args.only and args.output.exists()
        else {}
    )
    text = report(facts, outcomes, args.quick, earlier)
    args.output.write_text(text)
    print()
    print(text)
    print(f"written to {args.output}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
