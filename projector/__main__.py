"""`python -m projector [run [--until-idle] | rebuild]`: statuses from Kafka into Postgres."""

from __future__ import annotations

import argparse
import asyncio
import os

from projector.rebuild import rebuild
from projector.service import run
from projector.settings import ProjectorSettings
from runtime.lifecycle import load_settings, run_service
from runtime.logs import configure_logging
from runtime.usage import add_environment_help

DESCRIPTION = (
    "The status projector: folds the status topic's webhook events into the PostgreSQL "
    "read model, committing offsets after the database (docs/webhooks.md). `run` (the "
    "default) serves /metrics, /healthz and /readyz on "
    "PROJECTOR_METRICS_HOST:PROJECTOR_METRICS_PORT; `rebuild` replays the whole topic "
    "into a fresh table and swaps it in. Every setting is an environment variable."
)


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="python -m projector", description=DESCRIPTION)
    commands = built.add_subparsers(dest="command")
    run_command = commands.add_parser("run", help="consume and fold (the default)")
    run_command.add_argument(
        "--until-idle", action="store_true", help="exit once every partition is caught up"
    )
    commands.add_parser("rebuild", help="replay the topic into a fresh table and swap it in")
    return add_environment_help(built, ProjectorSettings.from_env)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = load_settings("projector", ProjectorSettings.from_env, os.environ)
    configure_logging(settings.log_level)

    async def _main(stop: asyncio.Event) -> None:
        if args.command == "rebuild":
            await rebuild(settings)
        else:
            await run(settings, stop, until_idle=getattr(args, "until_idle", False))

    run_service(_main, service="projector")


if __name__ == "__main__":
    main()
