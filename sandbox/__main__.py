"""`python -m sandbox [flags]`: the Kirim API simulator on SANDBOX_HOST:SANDBOX_PORT."""

from __future__ import annotations

import asyncio
import os
import sys

from runtime.env import SettingsError
from runtime.lifecycle import run_service
from runtime.logs import configure_logging
from sandbox.flags import overrides
from sandbox.server import run
from sandbox.settings import SandboxSettings


def main(argv: list[str] | None = None) -> None:
    environment = {**os.environ, **overrides(sys.argv[1:] if argv is None else argv)}
    try:
        settings = SandboxSettings.from_env(environment)
    except SettingsError as exc:
        sys.exit(f"sandbox: {exc}")
    configure_logging(settings.log_level)

    async def serve(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(serve)


if __name__ == "__main__":
    main()
