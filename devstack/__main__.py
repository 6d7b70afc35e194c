"""`python -m devstack up|down|status|env`: the local Kafka broker and PostgreSQL."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from devstack.errors import DevstackError
from devstack.kafka import KAFKA_VERSION, ensure_jars, jar_count
from devstack.stack import Stack


def _state_dir() -> Path:
    # The only environment read here; devstack is tooling, not a service.
    return Path(os.environ.get("DEVSTACK_DIR", Path.cwd() / ".run" / "devstack"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env", "jars"])
    args = parser.parse_args(argv)
    stack = Stack.load_or_plan(_state_dir())
    try:
        if args.command == "up":
            started = time.monotonic()
            stack.up()
            print(
                f"# kafka {KAFKA_VERSION} and postgres ready in {time.monotonic() - started:.1f}s",
                file=sys.stderr,
            )
            args.command = "env"
        if args.command == "env":
            env_file = _state_dir() / "env.sh"
            lines = [f"export {key}={value}" for key, value in stack.environment().items()]
            env_file.write_text("\n".join(lines) + "\n")
            print("\n".join(lines))
        elif args.command == "down":
            stack.down()
            print("kafka and postgres stopped")
        elif args.command == "status":
            for name, running in stack.status().items():
                print(f"{name}: {'running' if running else 'stopped'}")
            print("\n".join(f"{k}={v}" for k, v in stack.environment().items()))
        elif args.command == "jars":
            libs = ensure_jars()
            print(f"kafka {KAFKA_VERSION}: {jar_count(libs)} jars in {libs}")
    except DevstackError as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
