"""The demo's flags and the options they make (`broadcast demo --help`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Final

from cli.demo.config import LOW_TIER, DemoOptions
from cli.demo.paths import shown
from cli.errors import UsageError

_FLAGS: Final = (
    ("--recipients", int, "size of the campaign on the 10K-tier number"),
    ("--low-tier-recipients", int, f"size of the campaign on the {LOW_TIER}-tier number"),
    ("--window-seconds", int, "the tier's rolling window, for the sandbox and the dispatcher"),
    ("--write-per-minute", int, "the API's write rate"),
    ("--interval", float, "seconds between refreshes"),
    ("--max-seconds", float, "fail when the campaigns are not finished after this long"),
    ("--bootstrap-servers", str, "Kafka (default: the dev stack)"),
    ("--database-url", str, "a PostgreSQL database used as it is (default: a fresh one)"),
    ("--log-dir", Path, "where the services log"),
)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `DemoOptions` field, with its default in the help."""
    defaults_ = DemoOptions()
    for flag, kind, text in _FLAGS:
        default = getattr(defaults_, flag[2:].replace("-", "_"))
        note = f" ({shown(default) if isinstance(default, Path) else default})" if default else ""
        metavar = flag.rsplit("-", 1)[-1].upper()
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text + note)
    parser.add_argument(
        "--keep-running", action="store_true", help="keep the services up until Ctrl-C"
    )


def options_from(args: argparse.Namespace) -> DemoOptions:
    """The parsed flags as options; `UsageError` for a value out of range."""
    options = DemoOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoOptions)}
    )
    if options.recipients < 1 or options.low_tier_recipients < 0:
        raise UsageError("--recipients must be >= 1 and --low-tier-recipients >= 0")
    if options.window_seconds < 1 or options.write_per_minute < 1:
        raise UsageError("--window-seconds and --write-per-minute must be >= 1")
    if options.interval <= 0 or options.max_seconds <= 0:
        raise UsageError("--interval and --max-seconds must be > 0")
    return options
