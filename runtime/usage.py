"""`--help` for every service: usage, every variable its `from_env` reads, exit codes.

The variable list is recorded from `from_env` itself (`runtime.env.EnvRecorder`),
so it is exactly what the service reads. Defaults of secrets are masked: any
variable named like a key, secret, password or token, and the password of any
URL (`DATABASE_URL`).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from runtime.env import Default, EnvRecorder, Variable
from runtime.lifecycle import EXIT_CONFIG, EXIT_CRASH, EXIT_OK

_S = TypeVar("_S")

_SECRET_WORDS: Final = ("KEY", "SECRET", "PASSWORD", "TOKEN")
_MASK: Final = "****"
_WIDTH: Final = 79

EXIT_STATUS_HELP: Final = (
    "Exit status:\n"
    f"  {EXIT_OK}  stopped cleanly (SIGTERM or SIGINT: drained, committed, closed)\n"
    f"  {EXIT_CRASH}  crashed (unexpected error, traceback on stderr); restarting is safe\n"
    f"  {EXIT_CONFIG}  bad configuration (one line on stderr naming the variable) or a bad\n"
    "     argument; fix it before restarting"
)


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)


def masked(name: str, value: str) -> str:
    """`value` as `--help` may print it: secrets hidden, URL passwords replaced."""
    if not value:
        return value
    if is_secret(name):
        # A recognisable prefix (`kdv_`, `whse`) tells which default it is, not the secret.
        return value[:4] + _MASK if len(value) >= 12 else _MASK
    if "://" in value:
        parts = urlsplit(value)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            user = parts.username or ""
            return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))
    return value


def shown_default(default: Default) -> str:
    """A default as `--help` prints it (before masking)."""
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float):
        return str(int(default)) if default.is_integer() else repr(default)
    if default == "":
        return "(empty)"
    return str(default)


def recorded(from_env: Callable[[Mapping[str, str]], _S]) -> tuple[tuple[Variable, ...], _S]:
    """What `from_env` reads, with the defaults its readers know, and what it built."""
    recorder = EnvRecorder()
    built = from_env(recorder)
    return recorder.variables, built


def environment_help(
    variables: Sequence[Variable], defaults: Mapping[str, str] | None = None
) -> str:
    """The "Environment variables" block; `defaults` overrides shown defaults by name
    (for values computed after the read, such as a table built when a variable is empty)."""
    overrides = defaults or {}
    width = max((len(variable.name) for variable in variables), default=0)
    lines = ["Environment variables (every one optional):"]
    for variable in variables:
        value = overrides.get(variable.name, variable.default)
        if value is None or value == "":
            text = shown_default(value)  # a placeholder, nothing to mask
        else:
            text = masked(variable.name, shown_default(value))
        lines.append(f"  {variable.name.ljust(width)}  [default: {text}]")
    return "\n".join(lines)


def add_environment_help(
    parser: argparse.ArgumentParser,
    from_env: Callable[[Mapping[str, str]], _S],
    defaults: Callable[[_S], Mapping[str, str]] | None = None,
) -> argparse.ArgumentParser:
    """End `parser`'s help with the service's variables and exit status; returns it."""
    variables, built = recorded(from_env)
    shown = defaults(built) if defaults is not None else None
    # The epilog is a table: printed as written, so the description is wrapped here.
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if parser.description:
        parser.description = "\n\n".join(
            textwrap.fill(paragraph, _WIDTH) for paragraph in parser.description.split("\n\n")
        )
    parser.epilog = f"{environment_help(variables, shown)}\n\n{EXIT_STATUS_HELP}"
    return parser


def service_parser(
    prog: str,
    description: str,
    from_env: Callable[[Mapping[str, str]], _S],
    defaults: Callable[[_S], Mapping[str, str]] | None = None,
) -> argparse.ArgumentParser:
    """A parser for a service that takes no arguments but `-h`/`--help`.

    `-h`/`--help` prints to stdout and exits 0; an unknown argument prints the usage
    and the error to stderr and exits 2 (argparse's behaviour, and `EXIT_CONFIG`).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    return add_environment_help(parser, from_env, defaults)
