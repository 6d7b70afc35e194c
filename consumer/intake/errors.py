"""Intake's exceptions: one root, a few leaves named for what happened.

Whether to retry is decided where each is caught (the accounts wait retries
`AccountsUnavailable`; nothing catches `AccountsRefused` or `ConsumerStalled`,
so the process exits and its supervisor restarts it, which is safe by design).
"""

from __future__ import annotations


class IntakeError(Exception):
    """Root of the intake's own exceptions."""


class AccountsUnavailable(IntakeError):  # noqa: N818 - named for what happened
    """The Kirim accounts API did not answer usefully (network, timeout, 401, 408, 429, 5xx)."""


class AccountsRefused(IntakeError):  # noqa: N818
    """The Kirim accounts API refused us (403, 404...): configuration, not weather."""


class ConsumerStalled(IntakeError):  # noqa: N818
    """The Kafka consumer lags but has fetched nothing for too long (aiokafka issue 1037)."""
