"""`python -m consumer`: intake and dispatch, configured from the environment."""

from __future__ import annotations

import asyncio
import os

from consumer.app import run
from consumer.settings import ConsumerSettings, help_defaults
from runtime.lifecycle import load_settings, run_service
from runtime.logs import configure_logging
from runtime.usage import service_parser

DESCRIPTION = (
    "Intake and dispatch: broadcast requests from Kafka into the PostgreSQL ledger, "
    "then one template send per recipient through the Kirim API, within each sender's "
    "tier and the API's rate limit. Takes no arguments: every setting is an environment "
    "variable (docs/intake.md, docs/dispatch.md). Serves /metrics, /healthz and /readyz "
    "on CONSUMER_METRICS_HOST:CONSUMER_METRICS_PORT."
)


def main(argv: list[str] | None = None) -> None:
    parser = service_parser(
        "python -m consumer", DESCRIPTION, ConsumerSettings.from_env, help_defaults
    )
    parser.parse_args(argv)
    settings = load_settings("consumer", ConsumerSettings.from_env, os.environ)
    configure_logging(settings.log_level)

    async def serve(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_service(serve, service="consumer")


if __name__ == "__main__":
    main()
