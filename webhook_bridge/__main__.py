"""`python -m webhook_bridge`: Kirim's signed webhooks in, `kirim.message-status` out."""

from __future__ import annotations

import asyncio
import os

from runtime.lifecycle import run_service
from runtime.logs import configure_logging
from webhook_bridge.service import run
from webhook_bridge.settings import BridgeSettings


def main() -> None:
    settings = BridgeSettings.from_env(os.environ)
    configure_logging(settings.log_level)

    async def _main(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(_main)


if __name__ == "__main__":
    main()
