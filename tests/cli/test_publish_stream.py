"""`broadcast publish` at scale: streamed files and queries, both budgets, bounded memory.

Against the session's real Kafka and PostgreSQL. The 200,000-row file runs as a child
process so its peak RSS is its own (`os.wait4`), compared with the same command on a
ten-row file: the difference is what the audience costs, and it must stay far below what
holding the parsed file in memory would (measured here on a sample, extrapolated).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cli import publish
from cli.app import invoke, prepare
from cli.chunks import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_SIZE, decode_body, encode_chunk
from cli.errors import OK, USAGE
from cli.producer import Record, publish_stream
from cli.producer import publish as publish_records
from cli.recipients import parse_csv
from cli.settings import CliSettings
from schemas.requests import BroadcastRequested, Chunk, decode_request_event
from tests.cli.conftest import SENDER, intake_until_idle, run_cli
from tests.topics import read_all

TEMPLATE = ["--template", "promo_flash_sale", "--language", "id_ID", "--body-param", "{{name}}"]
OPTED = "2026-01-05T10:00:00Z"
ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def phone(i: int) -> str:
    # Valid Indonesian mobile numbers, distinct for i < 10**7.
    return f"+62813{i:07d}"


def write_csv(path: Path, count: int, *, long_from: int | None = None) -> list[str]:
    """`count` rows; from `long_from` on, 150-character names make the byte budget bind."""
    phones = []
    with path.open("w") as out:
        out.write("phone,opted_in_at,name\n")
        for i in range(count):
            name = f"n{i}" if long_from is None or i < long_from else f"{i}" + "x" * 150
            phones.append(phone(i))
            out.write(f"{phones[-1]},{OPTED},{name}\n")
    return phones


def requested(records: Sequence[Any]) -> list[BroadcastRequested]:
    events = [decode_request_event(r.value) for r in records]
    assert all(isinstance(e, BroadcastRequested) for e in events)
    return [e for e in events if isinstance(e, BroadcastRequested)]


def check_chunks(events: list[BroadcastRequested], values: list[bytes], phones: list[str]) -> None:
    """Both budgets kept, chunk.count right, every recipient in exactly one chunk, in order."""
    assert [(e.chunk.index, e.chunk.count) for e in events] == [
        (i, len(events)) for i in range(len(events))
    ]
    assert all(len(e.recipients) <= DEFAULT_CHUNK_SIZE for e in events)
    assert all(len(v) <= DEFAULT_CHUNK_BYTES for v in values)
    assert [r.phone for e in events for r in e.recipients] == phones


@dataclass(frozen=True, slots=True)
class Child:
    code: int
    out: str
    err: str
    max_rss: int  # bytes
    seconds: float


def run_child(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> Child:
    """`python -m cli ...` in a child process, with its own peak RSS."""
    started = time.monotonic()
    with (
        stdin.open("rb") if stdin else open(os.devnull, "rb") as source,
        subprocess.Popen(
            [sys.executable, "-m", "cli", *argv],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as child,
    ):
        # communicate() would reap the child and lose its rusage: read, then wait4.
        out, err = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return Child(
        child.returncode,
        out.decode(),
        err.decode(),
        usage.ru_maxrss * 1024,  # KiB on Linux
        time.monotonic() - started,
    )


def loaded_bytes(path: Path, sample_rows: int, total_rows: int) -> int:
    """What `parse_csv` of the whole file would hold, extrapolated from a sample."""
    with path.open() as source:
        text = "".join(source.readline() for _ in range(sample_rows + 1))
    tracemalloc.start()
    audience = parse_csv(text)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(audience.recipients) == sample_rows
    return size * total_rows // sample_rows


async def test_a_200k_row_file_streams_in_bounded_memory(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    rows = 200_000
    big, small = tmp_path / "big.csv", tmp_path / "small.csv"
    phones = write_csv(big, rows, long_from=rows // 2)
    write_csv(small, 10)
    flags = [*TEMPLATE, "--sender", SENDER, "--json"]
    baseline = await asyncio.to_thread(run_child, ["publish", str(small), *flags], cli_env)
    assert baseline.code == OK, baseline.err
    result = await asyncio.to_thread(run_child, ["publish", str(big), *flags], cli_env)
    assert result.code == OK, result.err
    report = msgspec.json.decode(result.out.strip().splitlines()[-1])

    records = [
        r
        for r in await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
        if r.key == report["campaign_id"].encode()
    ]
    events = requested(records)
    check_chunks(events, [r.value for r in records], phones)
    # Short names: the recipient count binds; long names: the byte budget does.
    sizes = [c["recipients"] for c in report["chunks"]]
    assert sizes[:20] == [DEFAULT_CHUNK_SIZE] * 20
    assert 1_000 < max(sizes[21:]) < DEFAULT_CHUNK_SIZE
    assert [c["bytes"] for c in report["chunks"]] == [len(r.value) for r in records]
    assert report["preview"]["eligible"] == rows

    grown = result.max_rss - baseline.max_rss
    loaded = loaded_bytes(big, 5_000, rows)
    print(  # the figures the report quotes (pytest -s)
        f"\n200k rows: {result.seconds:.1f}s, peak RSS {result.max_rss / MiB:.0f} MiB "
        f"(+{grown / MiB:.1f} MiB over 10 rows: {baseline.max_rss / MiB:.0f} MiB); loading "
        f"the file would hold "
        f"{loaded / MiB:.0f} MiB; {len(records)} chunks"
    )
    assert grown < 48 * MiB
    assert grown < loaded / 3


async def test_stdin_is_streamed_too(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    row = {"opted_in_at": OPTED, "variables": {"name": "A"}}
    body = b"".join(msgspec.json.encode({"phone": phone(i), **row}) + b"\n" for i in range(300))
    path.write_bytes(body + b"not json\n")
    argv = ["publish", "-", "--format", "jsonl", *TEMPLATE, "--sender", SENDER]
    bad = await asyncio.to_thread(run_child, argv, cli_env, path)
    assert bad.code == USAGE
    assert "broadcast: -: 1 malformed row, nothing published: line 301: not a JSON" in bad.err
    path.write_bytes(body)
    good = await asyncio.to_thread(run_child, [*argv, "--chunk-size", "100"], cli_env, path)
    assert good.code == OK, good.err
    assert "recipients  - (jsonl, 300 rows)" in good.out
    assert "published 3 chunk(s)" in good.out


async def test_a_query_streams_through_a_server_side_cursor(
    cli_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    table = f"audience_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(
        f"""CREATE TABLE {table} AS
            SELECT i AS id, '+62813' || lpad(i::text, 7, '0') AS phone,
                   CASE WHEN i % 10 = 0 THEN NULL ELSE timestamptz '{OPTED}' END AS opted_in_at,
                   'name' || i AS name, i % 7 AS visits
            FROM generate_series(0, 49999) AS i"""
    )
    query = f"SELECT phone, opted_in_at, name, visits FROM {table} ORDER BY id"
    result = await run_cli(
        ["publish", "--from-query", query, *TEMPLATE, "--sender", SENDER, "--json"], cli_env
    )
    assert result.code == OK, result.err
    report = result.json()
    assert report["recipients"] == {"file": None, "query": query, "format": "query", "rows": 50_000}
    assert report["preview"]["eligible"] == 45_000
    assert report["preview"]["not_opted_in"] == 5_000
    records = await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
    events = requested(records)
    check_chunks(events, [r.value for r in records], [phone(i) for i in range(50_000)])
    first = events[0].recipients[1]
    assert first.variables == {"name": "name1", "visits": "1"}
    assert first.opted_in_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert events[0].recipients[0].opted_in_at is None

    # Mapped as a CSV's columns are: a missing column is refused, a bad row names its number.
    missing = await run_cli(
        ["publish", "--from-query", f"SELECT phone FROM {table}", *TEMPLATE, "--sender", SENDER],
        cli_env,
    )
    assert missing.code == USAGE
    assert "the query needs `phone` and `opted_in_at` columns" in missing.err
    bad = await run_cli(
        [
            "publish",
            "--from-query",
            f"SELECT CASE WHEN id = 2 THEN '' ELSE phone END AS phone, opted_in_at, name "
            f"FROM {table} WHERE id < 5 ORDER BY id",
            *TEMPLATE,
            "--sender",
            SENDER,
            "--json",
        ],
        cli_env,
    )
    assert bad.code == USAGE
    assert "1 malformed row, nothing published: row 3: phone is empty" in bad.err
    assert bad.json()["error"]["bad_rows"] == [{"row": 3, "reason": "phone is empty"}]
    plain = f"SELECT phone, opted_in_at FROM {table}"
    argv = ["publish", "--from-query", plain, *TEMPLATE, "--sender", SENDER, "--dry-run"]
    unordered = await run_cli(argv, cli_env)
    assert "the query has no ORDER BY" in unordered.err


async def test_an_interrupted_publish_is_finished_by_running_it_again(
    cli_env: dict[str, str], database_url: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    phones = write_csv(path, 6_000)
    campaign = uuid.uuid4()
    flags = [str(path), *TEMPLATE, "--sender", SENDER, "--campaign-id", str(campaign)]
    flags += ["--chunk-size", "1000"]

    # The first run dies after two of its six chunks reached Kafka.
    invocation = prepare(["publish", *flags], cli_env, io.StringIO(), io.StringIO())
    assert not isinstance(invocation, int)
    settings = invocation.settings
    request = publish.request_from(invocation.args, settings.database_url)
    prepared = await publish.prepare(settings, request, datetime.now(UTC))
    assert prepared.spool is not None
    first_two = [
        encode_chunk(request.campaign, decode_body(body), Chunk(index=cut.index, count=6))[1]
        for cut, body in zip(prepared.chunks[:2], prepared.spool, strict=False)
    ]
    prepared.close()
    await publish_records(settings, [Record(str(campaign).encode(), v) for v in first_two])

    result = await run_cli(["publish", *flags, "--json"], cli_env)
    assert result.code == OK, result.err
    assert "already exists" not in result.err  # intake has not run yet
    again = await run_cli(["publish", *flags, "--json"], cli_env)
    assert again.code == OK, again.err
    records = await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"])
    values = [r.value for r in records]
    assert len(values) == 14
    assert values[:2] == values[2:4]
    assert values[2:8] == values[8:]  # the re-run publishes identical events
    check_chunks(requested(records[2:8]), values[2:8], phones)

    await intake_until_idle(cli_env, database_url)
    assert await db_pool.fetchval(
        "SELECT count(*) FROM ledger WHERE campaign_id = $1", campaign
    ) == len(phones)
    status = await run_cli(["status", str(campaign), "--json"], cli_env)
    assert status.json()["chunks"] == {"received": 6, "expected": 6}
    assert await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_DLQ_TOPIC"]) == []


async def test_a_bad_row_deep_in_a_big_file_names_its_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    write_csv(path, 30_000)
    lines = path.read_text().splitlines(keepends=True)
    lines[25_000] = f"{phone(25_000)},not a date,X\n"
    path.write_text("".join(lines))
    result = await run_cli(["publish", str(path), *TEMPLATE, "--sender", SENDER], cli_env)
    assert result.code == USAGE
    assert result.err == (
        f"broadcast: {path}: 1 malformed row, nothing published: line 25001: "
        "opted_in_at: Invalid RFC3339 encoded datetime\n"
    )
    assert await read_all(cli_env["KAFKA_BOOTSTRAP_SERVERS"], cli_env["REQUESTS_TOPIC"]) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_terminal_gets_a_progress_bar_and_stdout_stays_json(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    write_csv(path, 20_000)
    out, err = io.StringIO(), _Terminal()
    argv = ["publish", str(path), *TEMPLATE, "--sender", SENDER, "--json", "--chunk-size", "2000"]
    assert await invoke(argv, cli_env, out, err) == OK
    [line] = out.getvalue().splitlines()
    assert len(msgspec.json.decode(line)["chunks"]) == 10
    text = err.getvalue()
    assert "\r" in text
    assert "read  [████████████████████] 100%  20,000 lines  10 chunks" in text
    assert "publish  [████████████████████] 100%  10/10 chunks  20,000 recipients" in text


async def test_publish_stream_keeps_a_bounded_window(cli_env: dict[str, str]) -> None:
    settings = CliSettings.from_env(cli_env)
    in_flight: list[int] = []
    produced = 0

    async def records() -> Any:
        nonlocal produced
        for i in range(50):
            produced += 1
            in_flight.append(produced - acknowledged)
            yield Record(b"k", f"value {i}".encode())

    acknowledged = 0

    def on_delivery(_delivery: object) -> None:
        nonlocal acknowledged
        acknowledged += 1

    deliveries = await publish_stream(
        settings, records(), total=50, on_delivery=on_delivery, window=4
    )
    assert len(deliveries) == 50
    assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)
    assert max(in_flight) <= 5  # the window, plus the record being handed over
