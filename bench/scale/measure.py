"""What the scale bench reads off the running processes: CPU, peak RSS, histograms."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import httpx

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """utime + stime (and the waited-for children's, for a postmaster whose backends exit)."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def postgres_cpu_seconds(postmaster: int) -> float:
    """The postmaster, the backends it has reaped, and the ones still running."""
    total = cpu_seconds(postmaster, with_children=True)
    for child in children(postmaster):
        try:
            total += cpu_seconds(child)
        except OSError:
            continue
    return total


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


async def scrape(port: int) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


def gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


Buckets = dict[str, dict[float, float]]


def histogram_buckets(texts: list[str], name: str, label: str) -> Buckets:
    """Cumulative bucket counts of a labelled histogram, summed over several scrapes."""
    merged: Buckets = defaultdict(lambda: defaultdict(float))
    prefix = name + "_bucket{"
    for text in texts:
        for line in text.splitlines():
            if not line.startswith(prefix):
                continue
            labels, _, value = line[len(prefix) :].partition("} ")
            parts = dict(item.split("=", 1) for item in labels.split(","))
            key = parts[label].strip('"')
            bound = parts["le"].strip('"')
            merged[key][math.inf if bound == "+Inf" else float(bound)] += float(value)
    return {key: dict(values) for key, values in merged.items()}


def quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile: linear within the bucket that holds the rank."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower
