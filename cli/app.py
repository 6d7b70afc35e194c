"""The `broadcast` command line: the parser, and running one command with its errors.

`prepare(argv, env)` parses the arguments and builds the settings (flags over
the environment); `Invocation.run()` runs the command and turns every failure
into one line on stderr (`broadcast: <what went wrong>`) and an exit code
(cli/errors.py). With `--json` a failure is also printed on stdout as
`{"error": {"code", "message", "exit_code", ...}}`.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

import asyncpg
from aiokafka.errors import KafkaError

from cli import (
    control,
    demo,
    doctor,
    errors,
    failures,
    projector,
    prune,
    publish,
    recipients_export,
    senders,
    status,
    suppression,
)
from cli.database import describe
from cli.errors import CliError, Unavailable, UsageError
from cli.output import PROGRAM, Console
from cli.producer import kafka_reason
from cli.settings import CliSettings
from runtime.env import SettingsError

Handler = Callable[[CliSettings, Console, argparse.Namespace], Awaitable[int]]

DESCRIPTION = """Operate WhatsApp template broadcasts: publish, watch, retry, control.

Connection settings come from the environment (KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL, KIRIM_BASE_URL, KIRIM_API_KEY, KIRIM_WEBHOOK_SECRETS, topic names);
each command's flags override them. Exit codes: 0 ok, 1 failed or unhealthy,
2 bad usage or input, 3 not found, 4 Kafka/PostgreSQL/API unavailable."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, not printed and exited)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--timeout", type=float, help="seconds for each connection (default 15, BROADCAST_TIMEOUT)"
    )
    connection = common.add_argument_group("connection (default: from the environment)")
    connection.add_argument("--bootstrap-servers", help="KAFKA_BOOTSTRAP_SERVERS")
    connection.add_argument("--database-url", help="DATABASE_URL")
    connection.add_argument("--api-url", help="KIRIM_BASE_URL")
    connection.add_argument("--api-key", help="KIRIM_API_KEY")
    connection.add_argument("--requests-topic", help="REQUESTS_TOPIC")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    common = _common()
    for module in (
        publish,
        status,
        failures,
        recipients_export,
        control,
        suppression,
        senders,
        projector,
        prune,
        doctor,
    ):
        module.register(commands, common)
    demo.register(commands)
    return parser


@dataclass(slots=True)
class Invocation:
    """One parsed command, ready to run."""

    args: argparse.Namespace
    settings: CliSettings
    console: Console

    @property
    def is_demo(self) -> bool:
        return bool(self.args.command == "demo")

    @property
    def interrupt_exit_code(self) -> int:
        # Ctrl-C is how a watch normally ends.
        return errors.OK if getattr(self.args, "watch", False) else errors.INTERRUPTED

    async def run(self) -> int:
        handler: Handler = self.args.handler
        try:
            return await handler(self.settings, self.console, self.args)
        except CliError as error:
            return fail(self.console, error)
        except KafkaError as error:
            return fail(self.console, Unavailable(f"Kafka unavailable: {kafka_reason(error)}"))
        except (OSError, TimeoutError) as error:
            return fail(self.console, Unavailable(f"connection failed: {describe(error)}"))
        except (asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError) as error:
            return fail(self.console, Unavailable(f"PostgreSQL connection lost: {describe(error)}"))
        except asyncpg.PostgresError as error:
            return fail(self.console, errors.Failed(f"PostgreSQL refused: {describe(error)}"))


def fail(console: Console, error: CliError) -> int:
    console.note(error.message)
    console.emit(
        {
            "error": {
                "code": error.code,
                "message": error.message,
                "exit_code": error.exit_code,
                **error.details,
            }
        }
    )
    return error.exit_code


def prepare(
    argv: Sequence[str] | None, env: Mapping[str, str], out: TextIO, err: TextIO
) -> Invocation | int:
    """Parse and configure; an exit code instead when that already ends it (--help, errors)."""
    console = Console(out, err, json=bool(argv and "--json" in argv))
    try:
        args = build_parser().parse_args(argv)
        settings = CliSettings.from_env(env).with_overrides(
            bootstrap_servers=getattr(args, "bootstrap_servers", None),
            database_url=getattr(args, "database_url", None),
            kirim_base_url=getattr(args, "api_url", None),
            kirim_api_key=getattr(args, "api_key", None),
            requests_topic=getattr(args, "requests_topic", None),
            timeout_seconds=getattr(args, "timeout", None),
        )
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else errors.OK
    except CliError as error:
        return fail(console, error)
    except SettingsError as error:
        return fail(console, UsageError(str(error)))
    console.json = bool(getattr(args, "json", False))
    return Invocation(args, settings, console)


async def invoke(argv: Sequence[str], env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Run one command inside an existing event loop (tests); `main` wraps this for a process."""
    prepared = prepare(argv, env, out, err)
    if isinstance(prepared, int):
        return prepared
    if prepared.is_demo:
        raise UsageError("the demo runs its own event loop: use main()")
    return await prepared.run()
