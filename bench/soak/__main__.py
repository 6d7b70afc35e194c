"""`python -m bench.soak [--minutes M] [--recipients N] [--short] [--output FILE]`

A campaign of 20,000 recipients on four sender numbers goes through two consumer
instances, the webhook bridge and the projector, while a scheduler SIGKILLs at random
a consumer, the bridge, the projector, the Kafka broker or PostgreSQL, and the
sandbox answers 5% 5xx, 2% late, 1% anomalies; forged webhooks and 1% malformed
request events are sent along. Then it checks, from the outside: no recipient has two
messages that did not fail (the sandbox's records), no eligible recipient is lost,
every dead letter has a reason, no forged webhook was acknowledged or stored, and the
projection equals a full rebuild from the topic. Exit 0 when every check holds.
`--short` is the CI variant (2,000 recipients, one minute).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bench.soak.processes import ROOT
from bench.soak.report import render
from bench.soak.run import Plan, new_state_dir, soak
from runtime.logs import configure_logging


def parse(argv: list[str]) -> tuple[Plan, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--minutes", type=float, help="chaos duration (default 10; short: 1)")
    parser.add_argument("--recipients", type=int, help="default 20,000 (short: 2,000)")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="the CI variant")
    parser.add_argument(
        "--output",
        type=Path,
        help="where the report goes (default docs/reliability.md; the short variant: none)",
    )
    parser.add_argument("--state-dir", type=Path, help="default .run/soak/<time>")
    args = parser.parse_args(argv)
    short = args.short
    minutes = args.minutes or (1.0 if short else 10.0)
    recipients = args.recipients or (2_000 if short else 20_000)
    if minutes <= 0 or recipients < args.senders or args.senders < 1:
        parser.error("--minutes must be > 0 and --recipients >= --senders >= 1")
    plan = Plan(
        minutes=minutes,
        recipients=recipients,
        senders=args.senders,
        chunk_size=100 if short else 250,
        seed=args.seed,
        between_kills=(2.0, 5.0) if short else (4.0, 12.0),
        down=(0.5, 2.0) if short else (0.5, 3.0),
        drain_seconds=90.0 if short else 300.0,
        state_dir=new_state_dir(args.state_dir),
    )
    output = args.output if args.output or short else ROOT / "docs" / "reliability.md"
    return plan, output


def main(argv: list[str] | None = None) -> int:
    plan, output = parse(sys.argv[1:] if argv is None else argv)
    # The soak's own clients see every outage it causes: only what is worse matters.
    configure_logging("ERROR")
    logging.getLogger("asyncpg").setLevel(logging.CRITICAL)
    outcome = asyncio.run(soak(plan))
    text = render(outcome, "python -m bench.soak " + " ".join(sys.argv[1:]))
    print(text)
    if output is not None:
        output.write_text(text)
    print(f"logs: {plan.state_dir / 'logs'}", file=sys.stderr)
    return 0 if outcome.holds else 1


if __name__ == "__main__":
    sys.exit(main())
