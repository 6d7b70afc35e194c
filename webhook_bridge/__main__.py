"""`python -m webhook_bridge`: Kirim's signed webhooks in, `kirim.message-status` out."""

from __future__ import annotations

import asyncio
import os

from runtime.lifecycle import load_settings, run_service
from runtime.logs import configure_logging
from runtime.usage import service_parser
from webhook_bridge.service import run
from webhook_bridge.settings import BridgeSettings

DESCRIPTION = (
    "The webhook bridge: verifies Kirim's signed status webhooks on WEBHOOK_PATH and "
    "produces each one to the status topic, answering 2xx only after Kafka acknowledged "
    "it (docs/webhooks.md). Listens at once: /healthz answers while the process lives, "
    "/readyz and the webhook path answer 503 until Kafka is reachable. Takes no "
    "arguments: every setting is an environment variable."
)


def main(argv: list[str] | None = None) -> None:
    service_parser("python -m webhook_bridge", DESCRIPTION, BridgeSettings.from_env).parse_args(
        argv
    )
    settings = load_settings("webhook_bridge", BridgeSettings.from_env, os.environ)
    configure_logging(settings.log_level)

    async def _main(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(_main, service="webhook_bridge")


if __name__ == "__main__":
    main()
