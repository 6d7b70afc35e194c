"""`python -m projector [run [--until-idle] | rebuild]`: statuses from Kafka into Postgres."""

from __future__ import annotations

import argparse
import asyncio
import os

from projector.rebuild import rebuild
from projector.service import run
from projector.settings import ProjectorSettings
from runtime.lifecycle import run_service
from runtime.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="projector", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run_command = commands.add_parser("run", help="consume and fold (the default)")
    run_command.add_argument(
        "--until-idle", action="store_true", help="exit once every partition is caught up"
    )
    commands.add_parser("rebuild", help="replay the topic into a fresh table and swap it in")
    args = parser.parse_args(argv)

    settings = ProjectorSettings.from_env(os.environ)
    configure_logging(settings.log_level)

    async def _main(stop: asyncio.Event) -> None:
        if args.command == "rebuild":
            await rebuild(settings)
        else:
            await run(settings, stop, until_idle=getattr(args, "until_idle", False))

    run_service(_main)


if __name__ == "__main__":
    main()
