"""`python -m sandbox [flags]`: the Kirim API simulator on SANDBOX_HOST:SANDBOX_PORT."""

from __future__ import annotations

import asyncio
import os
import sys

from runtime.lifecycle import load_settings, run_service
from runtime.logs import configure_logging
from runtime.usage import add_environment_help
from sandbox.flags import overrides, parser
from sandbox.server import run
from sandbox.settings import SandboxSettings, help_defaults


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    # Parsed once for `--help` (with the variables) and for a bad flag (exit 2);
    # `overrides` then maps the flags onto variable names.
    add_environment_help(parser(), SandboxSettings.from_env, help_defaults).parse_args(arguments)
    environment = {**os.environ, **overrides(arguments)}
    settings = load_settings("sandbox", SandboxSettings.from_env, environment)
    configure_logging(settings.log_level)

    async def serve(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(serve, service="sandbox")


if __name__ == "__main__":
    main()
