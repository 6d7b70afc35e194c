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
from typing import Any

from cli.demo.audience import sample_audience
from cli.demo.config import (
    LOW_TIER,
    LOW_TIER_SENDER,
    DemoOptions,
    sandbox_config,
    service_environment,
)
from cli.demo.flags import add_flags
from cli.demo.launcher import run_demo

__all__ = [
    "DESCRIPTION",
    "LOW_TIER",
    "LOW_TIER_SENDER",
    "DemoOptions",
    "register",
    "run_demo",
    "sample_audience",
    "sandbox_config",
    "service_environment",
]

DESCRIPTION = "run a demo broadcast end to end on the local stack"


def register(commands: Any) -> None:
    """Add `broadcast demo` to the command parser; its help is this package's docstring."""
    parser = commands.add_parser(
        "demo",
        help=DESCRIPTION,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(parser)
