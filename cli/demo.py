"""`broadcast demo`: a realistic broadcast end to end on the local stack (`make demo`).

1. Kafka and PostgreSQL: the developer stack in `.run/devstack` (started when it is
   not running) with a fresh database `demo_<time>` per run (the previous runs' demo
   databases are dropped), or the servers `--bootstrap-servers` / `--database-url`
   name (that database is used as it is).
2. The four services as child processes sharing one environment: the Kirim sandbox,
   the webhook bridge, the projector and the consumer (intake and dispatcher), on the
   contract's ports when free (free ones otherwise), logging to `<log-dir>/<service>.log`.
   The sandbox plays an organisation on the enterprise plan (6,000 sends/min) with two
   connected numbers: `106540352242922` on the 10K tier and `106540352242923` on the
   250 tier. About 2% of recipients are not on WhatsApp, 0.5% have blocked the
   business, a few sends meet an upstream error (retried), and statuses arrive within
   seconds. The tier window is `--window-seconds` (20 s) instead of 24 h, for the
   sandbox and the dispatcher alike, so the low tier's deferral shows in the demo.
3. Two generated audiences (valid Indonesian mobiles, a few invalid, duplicated or
   not opted in, `first_name` variables) are previewed, planned and published by
   `broadcast publish`'s own code, chunked, to the requests topic: 10,000 recipients
   on the 10K number and 600 on the 250 number (three quota windows).
4. Live progress of both until they are finished, then the progress tables, the
   failure buckets, the sandbox's audit (sends per recipient, each tier respected)
   and where the metrics and logs are; then every child gets SIGTERM (SIGKILL after
   a grace period). Ctrl-C stops everything the same way at any point.

Exit codes: 0 done; 1 a service did not start or died, or the campaigns did not
finish in time (the reason names the service and its log); 4 Kafka or PostgreSQL
unreachable; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import ctypes
import dataclasses
import os
import random
import secrets
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import msgspec

from cli import errors, failures, publish
from cli.database import CONNECT_ERRORS, connect, describe
from cli.errors import CliError, Failed, NotFound, Unavailable, UsageError
from cli.output import Console, bar, duration, number
from cli.preview import preview_lines
from cli.progress import RateTracker
from cli.settings import CliSettings, redact_url
from cli.status import CampaignStatus, fetch_status, status_lines
from cli.templates import load_template
from devstack.errors import DevstackError
from devstack.procs import free_port, port_is_free
from devstack.stack import Stack
from runtime import defaults
from runtime.env import SettingsError
from runtime.migrate import MigrationError, migrate_url
from schemas.requests import Sender

DESCRIPTION = "run a demo broadcast end to end on the local stack"
ROOT: Final = Path(__file__).resolve().parent.parent
MAIN_SENDER: Final = defaults.DEFAULT_PHONE_NUMBER_ID
LOW_TIER_SENDER: Final = "106540352242923"
LOW_TIER: Final = 250
# They start together: the sandbox retries webhooks until the bridge is up, intake
# retries the accounts lookup until the sandbox is.
SERVICES: Final = ("sandbox", "webhook_bridge", "projector", "consumer")
PORT_VARIABLES: Final = {
    "sandbox": ("SANDBOX_PORT", defaults.SANDBOX_PORT),
    "webhook_bridge": ("WEBHOOK_BRIDGE_PORT", defaults.WEBHOOK_BRIDGE_PORT),
    "projector": ("PROJECTOR_METRICS_PORT", defaults.PROJECTOR_METRICS_PORT),
    "consumer": ("CONSUMER_METRICS_PORT", defaults.CONSUMER_METRICS_PORT),
}
START_SECONDS: Final = 90.0
STOP_GRACE_SECONDS: Final = 15.0
_REDRAW: Final = "\x1b[{}F\x1b[J"
_PR_SET_PDEATHSIG: Final = 1
_OWN_PREFIXES: Final = ("SANDBOX_", "KIRIM_")


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    recipients: int = 10_000
    low_tier_recipients: int = 600
    window_seconds: int = 20
    write_per_minute: int = 6_000
    interval: float = 1.0
    max_seconds: float = 300.0
    keep_running: bool = False
    bootstrap_servers: str | None = None
    database_url: str | None = None
    log_dir: Path = ROOT / ".run" / "demo"


_FLAGS: Final = (
    ("--recipients", int, "size of the campaign on the 10K-tier number"),
    ("--low-tier-recipients", int, f"size of the campaign on the {LOW_TIER}-tier number"),
    ("--window-seconds", int, "the tier's rolling window, for the sandbox and the dispatcher"),
    ("--write-per-minute", int, "the API's write rate"),
    ("--interval", float, "seconds between refreshes"),
    ("--max-seconds", float, "fail when the campaigns are not finished after this long"),
    ("--bootstrap-servers", str, "Kafka (default: the dev stack)"),
    ("--database-url", str, "a PostgreSQL database used as it is (default: a fresh one)"),
    ("--log-dir", Path, "where the services log"),
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help=DESCRIPTION,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults_ = DemoOptions()
    for flag, kind, text in _FLAGS:
        default = getattr(defaults_, flag[2:].replace("-", "_"))
        shown = f" ({_shown(default) if isinstance(default, Path) else default})" if default else ""
        metavar = flag.rsplit("-", 1)[-1].upper()
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text + shown)
    parser.add_argument(
        "--keep-running", action="store_true", help="keep the services up until Ctrl-C"
    )


def options_from(args: argparse.Namespace) -> DemoOptions:
    options = DemoOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoOptions)}
    )
    if options.recipients < 1 or options.low_tier_recipients < 0:
        raise UsageError("--recipients must be >= 1 and --low-tier-recipients >= 0")
    if options.window_seconds < 1 or options.write_per_minute < 1:
        raise UsageError("--window-seconds and --write-per-minute must be >= 1")
    if options.interval <= 0 or options.max_seconds <= 0:
        raise UsageError("--interval and --max-seconds must be > 0")
    return options


# --- the plan: pure functions of the options ------------------------------------------


def sandbox_config(options: DemoOptions) -> dict[str, Any]:
    """The sandbox's config document (docs/sandbox.md): two numbers and a realistic mix."""
    return {
        # Lifecycle delays are in sandbox seconds: sent 1 s, delivered 3 s later, read
        # 10 s later, run 5 times faster on the wall clock.
        "time_scale": 5.0,
        "rate_limits": {
            "plan": "enterprise",
            "write_per_minute": options.write_per_minute,
            "read_per_minute": 60_000,
        },
        "quota": {"window_seconds": options.window_seconds},
        "accounts": {
            MAIN_SENDER: {
                "phone_number": "+6281100000001",
                "name": "Toko Demo Jakarta",
                "messaging_tier": 10_000,
            },
            LOW_TIER_SENDER: {
                "phone_number": "+6281100000002",
                "name": "Toko Demo Bandung",
                "messaging_tier": LOW_TIER,
                "waba_id": "102290129340399",
            },
        },
        "outcomes": {
            "seed": 7,
            "mix": {
                "recipient_not_on_whatsapp": 0.02,
                "recipient_blocked": 0.005,
                # Accepted, then failed: sent again under a new key generation.
                "whatsapp_upstream_error": 0.002,
            },
            "read_share": 0.7,
            "delays": {"sent": 1.0, "delivered": 3.0, "read": 10.0, "failed": 2.0},
        },
        # A few upstream errors (502), which the dispatcher retries with the same key.
        "faults": {
            "server_errors": {
                "probability": 0.003,
                "status": 502,
                "code": "whatsapp_upstream_error",
            }
        },
    }


def service_environment(
    base: Mapping[str, str],
    *,
    bootstrap_servers: str,
    database_url: str,
    ports: Mapping[str, int],
    secret: str,
    options: DemoOptions,
) -> dict[str, str]:
    """One environment for the four services (and the CLI's settings)."""
    # An inherited SANDBOX_* or KIRIM_* variable would override the scenario (a real API
    # key, another quota window): the demo sets its own.
    env = {name: value for name, value in base.items() if not name.startswith(_OWN_PREFIXES)}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "DATABASE_URL": database_url,
            "KIRIM_BASE_URL": f"http://127.0.0.1:{ports['sandbox']}/v1",
            "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
            "KIRIM_WEBHOOK_SECRETS": secret,
            # The sandbox reads the same variable: both sides agree on the window.
            "QUOTA_WINDOW_SECONDS": str(options.window_seconds),
            "QUOTA_MARGIN_SECONDS": "2",
            "SANDBOX_CONFIG": msgspec.json.encode(sandbox_config(options)).decode(),
            "SANDBOX_WEBHOOK_URL": (
                f"http://127.0.0.1:{ports['webhook_bridge']}{defaults.WEBHOOK_PATH}"
            ),
            "SANDBOX_LOG_LEVEL": "WARNING",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for service, (variable, _) in PORT_VARIABLES.items():
        env[variable] = str(ports[service])
    return env


_FIRST_NAMES: Final = (
    "Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Wayan", "Made", "Nur", "Fitri",
    "Joko", "Sri", "Adi", "Ayu", "Bayu", "Dian", "Eka", "Hendra", "Indah", "Kartika", "Lestari",
    "Rizki", "Yusuf", "Fajar", "Gita", "Hadi", "Intan", "Ketut", "Wulan",
)  # fmt: skip
# Indonesian mobile prefixes (Telkomsel, Indosat, XL, Axis, Tri, Smartfren).
_MOBILE_PREFIXES: Final = (
    "811", "812", "813", "821", "822", "823", "851", "852", "853", "814", "815", "816", "855",
    "856", "857", "858", "817", "818", "819", "859", "877", "878", "831", "838", "895", "896",
    "897", "898", "899", "881", "882", "888",
)  # fmt: skip


def _invalid_phone(rng: random.Random) -> str:
    """What CRMs export besides good numbers: local formats, cut-off and foreign digits."""
    digits = f"{rng.randrange(10**7, 10**8)}"
    return rng.choice(
        (
            f"0{rng.choice(_MOBILE_PREFIXES)}{digits}",
            f"+62 {rng.choice(_MOBILE_PREFIXES)}-{digits[:3]}",
            f"+62 21 {digits[:3]}",
            f"{rng.choice(_MOBILE_PREFIXES)}-{digits[:4]}-{digits[4:]}",
        )
    )


def sample_audience(count: int, seed: int) -> list[tuple[str, str, str]]:
    """`count` CSV rows (phone, opted_in_at, first_name), deterministic for a seed.

    About 0.3% invalid phones, 0.5% repeats of an earlier phone (some formatted
    differently), 0.5% without an opt-in, 0.1% without a first name; a tenth of the
    valid phones are written with spaces and dashes, as CRMs export them.
    """
    rng = random.Random(seed)
    used: set[str] = set()
    written: list[str] = []
    rows: list[tuple[str, str, str]] = []
    for _ in range(count):
        roll = rng.random()
        name = rng.choice(_FIRST_NAMES)
        opted_in = (
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"T{rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}:00+07:00"
        )
        if roll < 0.003:
            rows.append((_invalid_phone(rng), opted_in, name))
            continue
        if roll < 0.008 and written:
            rows.append((rng.choice(written), opted_in, name))
            continue
        if roll < 0.013:
            opted_in = ""
        elif roll < 0.014:
            name = ""
        while True:
            national = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**7, 10**8)}"
            if national not in used:
                used.add(national)
                break
        phone = f"+62{national}"
        if rng.random() < 0.1:
            phone = f"+62 {national[:3]}-{national[3:7]}-{national[7:]}"
        written.append(phone)
        rows.append((phone, opted_in, name))
    return rows


def write_audience(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("phone", "opted_in_at", "first_name"))
        writer.writerows(rows)


# --- child processes --------------------------------------------------------------------


def _die_with_parent() -> None:
    # A demo killed with SIGKILL cannot stop its children: the kernel does (Linux).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def failure(self, what: str) -> Failed:
        return Failed(f"{what}: see {_shown(self.log_path)}", service=self.name)


@dataclass
class Children:
    """Every child started, so that even an interrupted shutdown can kill what is left."""

    items: list[Child] = field(default_factory=list)

    def kill_leftovers(self) -> None:
        for child in self.items:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.process.pid, 0)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


async def spawn(name: str, env: Mapping[str, str], log_dir: Path, port: int) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            name,
            env=dict(env),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # Its own session: a Ctrl-C reaches the demo, which stops the children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log_path, port)


async def wait_healthy(child: Child, deadline: float) -> None:
    url = f"http://127.0.0.1:{child.port}/healthz"
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not child.running:
                raise child.failure(
                    f"{child.name} exited with code {child.process.returncode} during start"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise child.failure(f"{child.name} not healthy at {url} after {START_SECONDS:.0f}s")
            await asyncio.sleep(0.25)


async def stop_all(children: Sequence[Child], grace_seconds: float) -> list[str]:
    """SIGTERM every child, SIGKILL what is left after the grace period; one note each."""
    running = [child for child in children if child.running]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    if running:
        await asyncio.wait(
            [asyncio.create_task(child.process.wait()) for child in running],
            timeout=grace_seconds,
        )
    notes = []
    for child in running:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            await child.process.wait()
            notes.append(f"{child.name} killed after {grace_seconds:.0f}s")
        elif (code := child.process.returncode or 0) < 0:
            notes.append(f"{child.name} ended by {signal.Signals(-code).name}")
        else:
            notes.append(f"{child.name} exit {code}")
    return notes


def check_alive(children: Sequence[Child]) -> None:
    for child in children:
        if not child.running:
            raise child.failure(f"{child.name} exited with code {child.process.returncode}")


# --- the run ---------------------------------------------------------------------------


@dataclass
class Campaign:
    label: str
    sender: str
    size: int
    seed: int
    campaign_id: uuid.UUID = field(default_factory=uuid.uuid4)
    published_at: float = 0.0
    finished_at: float | None = None
    last: CampaignStatus | None = None
    tracker: RateTracker = field(default_factory=RateTracker)

    def live_lines(self, unicode: bool) -> list[str]:
        """Four lines for the redrawn view on a terminal."""
        head = f"{self.label} ({self.campaign_id})"
        if self.last is None:
            return [head, "  waiting for intake to store the campaign", "", ""]
        snap = self.last.snapshot
        eta = "done" if snap.finished else duration(self.tracker.eta(snap.in_progress))
        counts = {name: count for name, count, _ in self.last.progress}
        reasons = _pending_reasons(self.last)

        def listed(names: Sequence[str]) -> str:
            return "  ".join(f"{name} {number(counts[name])}" for name in names if name in counts)

        return [
            head,
            f"  [{bar(snap.fraction, 30, unicode=unicode)}] {snap.fraction * 100:5.1f}%  "
            f"{number(snap.done)}/{number(snap.recipients)} done  ETA {eta}",
            f"  to do: {listed(('pending', 'queued', 'sent')) or '-'}"
            + (f"  ({reasons})" if reasons else ""),
            f"  done:  {listed(('delivered', 'read', 'failed', 'skipped')) or '-'}",
        ]

    def log_line(self, elapsed: float) -> str:
        """One line per refresh when the output is not a terminal."""
        if self.last is None:
            return f"{duration(elapsed):>7} {self.label}: waiting for intake"
        reasons = _pending_reasons(self.last)
        return (
            f"{duration(elapsed):>7} {self.label}: {self.last.snapshot.fraction * 100:5.1f}% | "
            f"{_counts(self.last)}" + (f" | pending: {reasons}" if reasons else "")
        )


def _counts(current: CampaignStatus) -> str:
    return "  ".join(f"{name} {number(count)}" for name, count, _ in current.progress)


def _pending_reasons(current: CampaignStatus) -> str:
    pending = [(reason, count) for status, reason, count in current.reasons if status == "pending"]
    return ", ".join(f"{reason} {number(count)}" for reason, count in pending)


def choose_ports() -> tuple[dict[str, int], list[str]]:
    """The contract's port of each service when free, a free one otherwise (with a note)."""
    ports: dict[str, int] = {}
    notes: list[str] = []
    for service, (_, preferred) in PORT_VARIABLES.items():
        ports[service] = preferred if port_is_free(preferred) else free_port()
        if ports[service] != preferred:
            notes.append(f"port {preferred} is busy: {service} uses {ports[service]}")
    return ports, notes


@dataclass
class Demo:
    options: DemoOptions
    base_env: Mapping[str, str]
    console: Console
    children: Children
    started: float = field(default_factory=time.monotonic)
    database_url: str = ""
    fresh_database: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)

    async def run(self) -> int:
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = await self.infrastructure()
        await _check_kafka(bootstrap)
        # The projector expects the schema (in production it starts after the consumer).
        try:
            await migrate_url(self.database_url)
        except MigrationError as error:
            raise Failed(f"{redact_url(self.database_url)}: {error}") from error
        except CONNECT_ERRORS as error:
            raise Unavailable(
                f"PostgreSQL unreachable at {redact_url(self.database_url)}: {describe(error)}"
            ) from error
        self.ports, notes = choose_ports()
        env = service_environment(
            self.base_env,
            bootstrap_servers=bootstrap,
            database_url=self.database_url,
            ports=self.ports,
            secret=f"whsec_demo_{secrets.token_hex(12)}",
            options=self.options,
        )
        try:
            settings = CliSettings.from_env(env).with_overrides(timeout_seconds=30.0)
        except SettingsError as error:
            raise UsageError(str(error)) from None
        say = self.console.line
        say(f"Kafka       {bootstrap}")
        say(f"PostgreSQL  {redact_url(self.database_url)}")
        self.console.lines([f"note: {note}" for note in notes])
        await self.start_services(env)
        say("")
        self.campaigns = [
            Campaign("flash sale, 10K-tier number", MAIN_SENDER, self.options.recipients, 1)
        ]
        if self.options.low_tier_recipients:
            label = f"flash sale, {LOW_TIER}-tier number"
            size = self.options.low_tier_recipients
            self.campaigns.append(Campaign(label, LOW_TIER_SENDER, size, 2))
        for campaign in self.campaigns:
            await self.publish(settings, campaign)
        await self.watch(settings)
        await self.summary(settings)
        if self.options.keep_running:
            say("")
            say("the services keep running; Ctrl-C stops them. Their environment:")
            for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "KIRIM_BASE_URL"):
                say(f"  export {name}={env[name]}")
            while True:
                check_alive(self.children.items)
                await asyncio.sleep(1.0)
        return errors.OK

    async def infrastructure(self) -> str:
        """Kafka's bootstrap servers; sets the database (as given, else fresh on the dev stack)."""
        options = self.options
        self.database_url = options.database_url or ""
        if options.bootstrap_servers and options.database_url:
            return options.bootstrap_servers
        stack = Stack.load_or_plan(ROOT / ".run" / "devstack")
        if not all(stack.status().values()):
            self.console.line("starting Kafka and PostgreSQL (python -m devstack up)...")
        try:
            await asyncio.to_thread(stack.up)
        except DevstackError as error:
            raise Unavailable(f"the dev stack did not start: {error}") from error
        if not options.database_url:
            old = await _demo_databases(stack.postgres.url("postgres"))
            for previous in old:
                await asyncio.to_thread(stack.postgres.drop_database, previous)
            if old:
                self.console.line(f"dropped the earlier demo database(s) {', '.join(old)}")
            name = f"demo_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"
            await asyncio.to_thread(stack.postgres.ensure_database, name)
            self.database_url, self.fresh_database = stack.postgres.url(name), True
        return options.bootstrap_servers or stack.kafka.bootstrap_servers

    async def start_services(self, env: Mapping[str, str]) -> None:
        log_dir = self.options.log_dir
        self.console.line(
            "services    "
            + ", ".join(f"{name} :{self.ports[name]}" for name in SERVICES)
            + f"; logs in {_shown(log_dir)}/"
        )
        for name in SERVICES:
            self.children.items.append(await spawn(name, env, log_dir, self.ports[name]))
        deadline = time.monotonic() + START_SECONDS
        await asyncio.gather(*(wait_healthy(child, deadline) for child in self.children.items))
        self.console.line(f"all four healthy after {duration(time.monotonic() - self.started)}")

    async def publish(self, settings: CliSettings, campaign: Campaign) -> None:
        """`broadcast publish`'s own steps: read, preview, plan, chunk, publish."""
        path = self.options.log_dir / f"audience-{campaign.sender}.csv"
        rows = sample_audience(campaign.size, campaign.seed)
        await asyncio.to_thread(write_audience, path, rows)
        template = load_template(
            name=defaults.DEFAULT_TEMPLATE,
            language=defaults.DEFAULT_TEMPLATE_LANGUAGE,
            body_params=["{{first_name}}"],
            file=None,
        )
        request = publish.PublishRequest(
            recipients=path,
            format="csv",
            template=template,
            sender=Sender(phone_number_id=campaign.sender),
            campaign_id=campaign.campaign_id,
            chunk_size=2_000,
        )
        prepared = await publish.prepare(settings, request, datetime.now(UTC))
        console = self.console
        console.line(f"-- {campaign.label}: publish {_shown(path)} --sender {campaign.sender}")
        for warning in prepared.warnings:
            console.warn(warning)
        console.lines(preview_lines(settings, prepared))
        deliveries = await publish.send(settings, prepared)
        campaign.published_at = time.monotonic()
        console.line(f"published {len(deliveries)} chunk(s) to {settings.requests_topic}")
        console.line("")

    async def watch(self, settings: CliSettings) -> None:
        """Refresh until every campaign is finished; `Failed` if a child dies or time runs out."""
        console, campaigns, options = self.console, self.campaigns, self.options
        started = time.monotonic()
        drawn = 0
        # Not on a terminal: one line per campaign every few seconds.
        every = options.interval if console.is_tty else max(options.interval, 3.0)
        async with connect(settings) as connection:
            while True:
                check_alive(self.children.items)
                now = time.monotonic()
                # Not on a terminal, a finished campaign's line is printed once.
                shown = [c for c in campaigns if c.finished_at is None or console.is_tty]
                for campaign in campaigns:
                    if campaign.finished_at is None:
                        with contextlib.suppress(NotFound):
                            campaign.last = await fetch_status(connection, campaign.campaign_id)
                            campaign.tracker.add(now, campaign.last.snapshot.done)
                            if campaign.last.snapshot.finished:
                                campaign.finished_at = now
                if console.is_tty:
                    block = [f"live progress, {duration(now - started)} (Ctrl-C stops the demo)"]
                    for campaign in campaigns:
                        block += ["", *campaign.live_lines(console.unicode)]
                    # A wrapped line would throw the redraw off: clip to the width.
                    width = shutil.get_terminal_size().columns - 1
                    block = [line[:width] for line in block]
                    if drawn:
                        console.out.write(_REDRAW.format(drawn))
                    console.lines(block)
                    drawn = len(block)
                else:
                    console.lines([campaign.log_line(now - started) for campaign in shown])
                if all(campaign.finished_at is not None for campaign in campaigns):
                    return
                if now - started > options.max_seconds:
                    raise Failed(
                        f"the campaigns are not finished after {duration(options.max_seconds)}: "
                        f"see the logs in {_shown(options.log_dir)}"
                    )
                await asyncio.sleep(every)

    async def summary(self, settings: CliSettings) -> None:
        console = self.console
        for campaign in self.campaigns:
            assert campaign.last is not None
            took = (campaign.finished_at or 0.0) - campaign.published_at
            console.line("")
            console.line(f"== {campaign.label}: finished {duration(took)} after publishing")
            console.lines(status_lines(campaign.last, eta=0.0, unicode=console.unicode))
            buckets = await failures.failure_buckets(settings, campaign.campaign_id)
            console.line("")
            if buckets:
                console.line("failures by code (broadcast failed):")
                console.lines(["  " + line for line in failures.bucket_lines(buckets)])
            else:
                console.line("no failures")
        console.line("")
        console.line("== what the Kirim sandbox saw (GET /_sandbox/audit)")
        console.lines(await self.audit_lines())
        await save_metrics(self.children.items, self.options.log_dir)
        console.line("")
        console.line("== where to look")
        console.lines(self.where_lines())

    async def audit_lines(self) -> list[str]:
        """Sends per recipient, and each number's most unique recipients in one window."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            answer = await http.get(f"http://127.0.0.1:{self.ports['sandbox']}/_sandbox/audit")
        data: dict[str, Any] = answer.json().get("data", {})
        totals = data.get("totals", {})
        repeats = totals.get("duplicate_accepts", 0)
        upstream = totals.get("failed", {}).get("whatsapp_upstream_error", 0)
        lines = [
            f"  accepted sends {number(totals.get('accepted_sends', 0))} to "
            f"{number(totals.get('distinct_recipients', 0))} recipients: "
            + (
                f"{number(repeats)} sent again after their accepted message failed "
                f"(whatsapp_upstream_error: {number(upstream)})"
                if repeats
                else "one each"
            ),
            f"  answered 429 {number(totals.get('rate_limited', 0))}, "
            f"5xx {number(totals.get('server_errors_injected', 0))}: each retried with its key",
        ]
        for campaign in self.campaigns:
            seen = data.get("numbers", {}).get(campaign.sender, {})
            tier = seen.get("tier")
            lines.append(
                f"  {campaign.sender}: tier {number(tier) if tier else 'unlimited'}, at most "
                f"{number(seen.get('max_window_recipients', 0))} unique recipients in any "
                f"{self.options.window_seconds}s window"
            )
        return lines

    def where_lines(self) -> list[str]:
        ports, log_dir = self.ports, _shown(self.options.log_dir)
        fresh = " (fresh for this run; the next demo drops it)" if self.fresh_database else ""
        return [
            f"  metrics     consumer http://127.0.0.1:{ports['consumer']}/metrics, "
            f"webhook bridge http://127.0.0.1:{ports['webhook_bridge']}/metrics,",
            f"              projector http://127.0.0.1:{ports['projector']}/metrics, "
            f"sandbox http://127.0.0.1:{ports['sandbox']}/metrics",
            "              (up with --keep-running; the last scrape of each: "
            f"{log_dir}/<service>.metrics.txt)",
            f"  logs        {log_dir}/<service>.log",
            f"  database    {redact_url(self.database_url)}{fresh}",
            # The dev stack's URL has no password; one given on the command line may.
            f"  afterwards  DATABASE_URL={self.database_url if fresh else '...'} "
            f".venv/bin/broadcast failed {self.campaigns[0].campaign_id}",
        ]


async def _check_kafka(bootstrap_servers: str) -> None:
    """`Unavailable` unless a broker accepts connections (the services would only crash)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            async with asyncio.timeout(5.0):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.close()
            return
    raise Unavailable(f"Kafka unreachable at {bootstrap_servers}")


async def _demo_databases(maintenance_url: str) -> list[str]:
    connection = await asyncpg.connect(maintenance_url, timeout=15)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'demo\\_%' ORDER BY datname"
        )
    finally:
        await connection.close()
    return [row["datname"] for row in rows]


async def save_metrics(children: Sequence[Child], log_dir: Path) -> None:
    """A last scrape of every /metrics into the log directory, for after the shutdown."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        for child in children:
            with contextlib.suppress(httpx.HTTPError, OSError):
                answer = await http.get(f"http://127.0.0.1:{child.port}/metrics")
                (log_dir / f"{child.name}.metrics.txt").write_text(answer.text)


async def _main(demo: Demo) -> int:
    task = asyncio.current_task()
    if task is not None:
        # `kill <pid>` stops the demo like Ctrl-C does.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await demo.run()
    finally:
        if demo.children.items:
            demo.console.line("")
            demo.console.line("stopping the services (SIGTERM)...")
            notes = await stop_all(demo.children.items, STOP_GRACE_SECONDS)
            demo.console.line(f"stopped: {', '.join(notes)}")
        demo.console.line(f"demo took {duration(time.monotonic() - demo.started)}")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code. Called outside any event loop."""
    console = Console(sys.stdout, sys.stderr)
    children = Children()
    try:
        options = options_from(args)
        # The demo is a launcher: its children inherit this environment (PATH, topic names).
        return asyncio.run(_main(Demo(options, os.environ, console, children)))
    except CliError as error:
        console.note(f"demo: {error.message}")
        return error.exit_code
    except (OSError, asyncpg.PostgresError) as error:
        console.note(f"demo: unavailable: {describe(error)}")
        return errors.UNAVAILABLE
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.note("demo: interrupted; the services are stopped")
        return errors.INTERRUPTED
    finally:
        children.kill_leftovers()
