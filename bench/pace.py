"""What an HTTP exchange costs per send at the pace the pipeline keeps, beside full speed.

    .venv/bin/python -m bench.pace [--seconds S]

The dispatcher's client alone (no ledger), against a sandbox configured as `bench.scale`'s
(20 ms, its 20 numbers, a write budget that does not bind), both on the cores they share,
held to a few in-flight levels: 35 keeps it near the pipeline's own 1,400-1,800 sends/s,
1,000 is as many as the pipeline may have. Both sides cost more per send at a lower pace,
since fewer requests share each wake-up of their event loops; this is what separates the
ledger's own cost from the pace's in `bench.scale`'s CPU per send (docs/deploy.md, "Sizing").
"""

from __future__ import annotations

import argparse
import asyncio

from bench.dispatch import http_ceiling
from bench.harness import table
from bench.scale.run import sandbox_config, senders

IN_FLIGHT = (35, 100, 1_000)


async def main(seconds: float) -> None:
    rows = []
    for in_flight in IN_FLIGHT:
        run = await http_ceiling(
            seconds, sandbox_config(), in_flight=in_flight, senders=senders(), sandbox_cpu=None
        )
        rows.append(
            (
                f"{in_flight:,}",
                round(run.rate),
                run.client_cpu_per_1000,
                run.sandbox_cpu_per_1000,
                f"{run.busy(run.client_cpu_per_1000):.2f}",
                f"{run.busy(run.sandbox_cpu_per_1000):.2f}",
            )
        )
    print(
        table(
            f"The client alone by pace: 20 senders, 20 ms API latency, {seconds:g} s each",
            [
                "in flight",
                "sends/s",
                "client CPU-s/1k",
                "sandbox CPU-s/1k",
                "client cores busy",
                "sandbox cores busy",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="per in-flight level")
    asyncio.run(main(parser.parse_args().seconds))
