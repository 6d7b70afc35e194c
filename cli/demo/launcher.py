"""The demo's run: infrastructure, services, two published campaigns, progress, report.

`run_demo(args, env)` is the whole command: it owns the event loop, and whatever
happens, every child it started is stopped before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import asyncpg

from cli import errors, publish
from cli.database import describe
from cli.demo.audience import sample_audience, write_audience
from cli.demo.campaign import Campaign
from cli.demo.children import (
    START_SECONDS,
    STOP_GRACE_SECONDS,
    Children,
    PortTaken,
    check_alive,
    spawn,
    stop_all,
    wait_healthy,
)
from cli.demo.config import (
    LOW_TIER,
    LOW_TIER_SENDER,
    MAIN_SENDER,
    SERVICES,
    DemoOptions,
    choose_ports,
    service_environment,
)
from cli.demo.flags import options_from
from cli.demo.infrastructure import prepare
from cli.demo.paths import shown
from cli.demo.view import summary, watch
from cli.errors import CliError, UsageError
from cli.output import Console, duration
from cli.preview import preview_lines
from cli.settings import CliSettings, redact_url
from cli.templates import load_template
from runtime import defaults
from runtime.env import SettingsError
from schemas.requests import Sender

# Each start probes the ports first; a program that binds one in between costs a retry.
PORT_ATTEMPTS: Final = 3


@dataclass
class Demo:
    options: DemoOptions
    base_env: Mapping[str, str]
    console: Console
    children: Children
    started: float = field(default_factory=time.monotonic)
    ports: dict[str, int] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)

    async def run(self) -> int:
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        infrastructure = await prepare(self.options, self.console)
        bootstrap, database_url = infrastructure.bootstrap_servers, infrastructure.database_url
        say = self.console.line
        say(f"Kafka       {bootstrap}")
        say(f"PostgreSQL  {redact_url(database_url)}")
        secret = f"whsec_demo_{secrets.token_hex(12)}"
        # The console's token: the user's own if set, else one for this run only.
        console_token = self.base_env.get("CONSOLE_TOKEN") or secrets.token_urlsafe(18)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.ports, notes = choose_ports(prefer_contract=attempt == 1)
            env = service_environment(
                self.base_env,
                bootstrap_servers=bootstrap,
                database_url=database_url,
                ports=self.ports,
                secret=secret,
                options=self.options,
                console_token=console_token,
            )
            try:
                settings = CliSettings.from_env(env).with_overrides(timeout_seconds=30.0)
            except SettingsError as error:
                raise UsageError(str(error)) from None
            self.console.lines([f"note: {note}" for note in notes])
            try:
                await self.start_services(env)
                break
            except PortTaken as clash:
                if attempt == PORT_ATTEMPTS:
                    raise clash.child.failure(f"{clash}, {PORT_ATTEMPTS} times") from None
                # The sandbox's webhook URL names the bridge's port: all start again.
                await stop_all(self.children.items, STOP_GRACE_SECONDS)
                self.children.items.clear()
                say(f"note: {clash}; starting them all again on free ports")
        say(
            f"console     http://127.0.0.1:{self.ports['console']}/"
            f"  (sign in with the token {console_token})"
        )
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
        await watch(settings, self.console, self.campaigns, self.children.items, self.options)
        await summary(
            settings,
            self.console,
            self.campaigns,
            children=self.children.items,
            ports=self.ports,
            options=self.options,
            infrastructure=infrastructure,
        )
        if self.options.keep_running:
            say("")
            say(
                f"the services keep running; the console: http://127.0.0.1:{self.ports['console']}/"
            )
            say("Ctrl-C stops them. Their environment:")
            for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "KIRIM_BASE_URL"):
                say(f"  export {name}={env[name]}")
            while True:
                check_alive(self.children.items)
                await asyncio.sleep(1.0)
        return errors.OK

    async def start_services(self, env: Mapping[str, str]) -> None:
        log_dir = self.options.log_dir
        self.console.line(
            "services    "
            + ", ".join(f"{name} :{self.ports[name]}" for name in SERVICES)
            + f"; logs in {shown(log_dir)}/"
        )
        for name in SERVICES:
            self.children.items.append(await spawn(name, env, log_dir, self.ports[name]))
        deadline = time.monotonic() + START_SECONDS
        await asyncio.gather(*(wait_healthy(child, deadline) for child in self.children.items))
        self.console.line(
            f"all {len(SERVICES)} healthy after {duration(time.monotonic() - self.started)}"
        )

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
        console.line(f"-- {campaign.label}: publish {shown(path)} --sender {campaign.sender}")
        for warning in prepared.warnings:
            console.warn(warning)
        console.lines(preview_lines(settings, prepared))
        deliveries = await publish.send(settings, prepared)
        campaign.published_at = time.monotonic()
        console.line(f"published {len(deliveries)} chunk(s) to {settings.requests_topic}")
        console.line("")


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


def run_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the demo; returns the exit code. Called outside any event loop.

    `env` is the process's environment, read in `__main__`: the demo is a launcher,
    and its children inherit it (PATH, topic names) under the demo's own settings.
    """
    console = Console(sys.stdout, sys.stderr)
    children = Children()
    try:
        options = options_from(args)
        return asyncio.run(_main(Demo(options, env, console, children)))
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
