"""`python -m schemas [--check]`: write (or check) the committed JSON Schema file."""

from __future__ import annotations

import argparse
import sys

from schemas import export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed file is stale"
    )
    args = parser.parse_args(argv)
    path = export.SCHEMA_PATH
    if args.check:
        fresh = path.exists() and path.read_text(encoding="utf-8") == export.render()
        print(f"{path}: {'up to date' if fresh else 'STALE, run `python -m schemas`'}")
        return 0 if fresh else 1
    changed = export.write(path)
    print(f"{path}: {'written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
