"""`broadcast` console script: operator commands and the demo.

Only wiring: the environment is read once here, then `cli.app` parses and runs.
"""

from __future__ import annotations

import asyncio
import os
import sys

from cli.app import prepare
from cli.demo import run_demo
from runtime.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    # Library logs (aiokafka reconnects, asyncpg) would break the one-line errors.
    configure_logging("CRITICAL")
    prepared = prepare(sys.argv[1:] if argv is None else argv, os.environ, sys.stdout, sys.stderr)
    if isinstance(prepared, int):
        return prepared
    if prepared.is_demo:
        return run_demo(prepared.args, os.environ)
    try:
        return asyncio.run(prepared.run())
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return prepared.interrupt_exit_code


if __name__ == "__main__":
    sys.exit(main())
