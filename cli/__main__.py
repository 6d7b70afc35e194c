"""`broadcast` console script: operator commands and the demo."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="broadcast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a demo broadcast end to end on the local stack")
    args = parser.parse_args(argv)
    if args.command == "demo":
        print(
            "Kafka and PostgreSQL are up (see `make status`). The demo broadcast needs the\n"
            "sandbox, consumer, dispatcher, webhook bridge and projector, which are not built\n"
            "yet: see the open issues. Stop the stack with `make down`."
        )
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
