"""The CLI's exceptions and exit codes: one root, one leaf per exit code.

Exit codes (public, documented in docs/cli.md):

- 0 `OK`: done; for `doctor`, every check passed;
- 1 `FAILED`: the command ran and the answer is bad (a check failed, a rebuild is
  already running, a database statement was refused);
- 2 `USAGE`: bad arguments or bad input (a malformed CSV/JSONL row, an unreadable
  template file, a phone that is not E.164): nothing was changed;
- 3 `NOT_FOUND`: the campaign, suppression or sender does not exist;
- 4 `UNAVAILABLE`: Kafka, PostgreSQL or the Kirim API could not be reached in time;
- 130 `INTERRUPTED`: Ctrl-C (except `status --watch`, where Ctrl-C is the normal end: 0).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
NOT_FOUND: Final = 3
UNAVAILABLE: Final = 4
INTERRUPTED: Final = 130


class CliError(Exception):
    """A failure the operator can act on: a one-line message and an exit code."""

    exit_code: ClassVar[int] = FAILED
    code: ClassVar[str] = "failed"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        # Extra machine-readable fields for `--json` error output.
        self.details = details


class Failed(CliError):  # noqa: N818 - named for what happened
    """The command ran and the answer is bad."""


class UsageError(CliError):
    """Bad arguments or input; nothing was changed."""

    exit_code = USAGE
    code = "usage"


class NotFound(CliError):  # noqa: N818 - named for what happened
    """The named campaign, suppression or sender does not exist."""

    exit_code = NOT_FOUND
    code = "not_found"


class Unavailable(CliError):  # noqa: N818 - named for what happened
    """A service (Kafka, PostgreSQL, the Kirim API) could not be reached in time."""

    exit_code = UNAVAILABLE
    code = "unavailable"
