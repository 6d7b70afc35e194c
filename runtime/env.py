"""Typed readers for environment variables, and a recorder that lists what they read.

Only `Settings.from_env` constructors call these, with the mapping passed in
from `__main__`; a bad value fails at start and names the variable.

`EnvRecorder` is an empty mapping that notes every variable a `from_env` asks
for, with its default: `--help` lists exactly what the code reads, so the list
cannot go stale. The readers note their own defaults; code that calls
`env.get(name, default)` or `name in env` directly is noted by the mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar, overload

Default = str | int | float | bool | None
_T = TypeVar("_T")


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable a `from_env` reads; `default` is None when unset has no value."""

    name: str
    default: Default


class EnvRecorder(Mapping[str, str]):
    """An environment with nothing set that records each variable asked for, in order."""

    def __init__(self) -> None:
        self._seen: dict[str, Default] = {}

    def note(self, name: str, default: Default) -> None:
        # A presence check (`env.get(name, "")`) may come before the reader that knows
        # the real default: an empty default gives way to a later, informative one.
        if name not in self._seen or self._seen[name] in (None, ""):
            self._seen[name] = default

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(Variable(name, default) for name, default in self._seen.items())

    def __getitem__(self, name: str) -> str:
        self.note(name, None)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.note(name, None)
        return False

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _T, /) -> str | _T: ...
    def get(self, name: str, default: object = None, /) -> object:
        self.note(name, default if isinstance(default, str | int | float | bool) else None)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _note(env: Mapping[str, str], name: str, default: Default) -> None:
    if isinstance(env, EnvRecorder):
        env.note(name, default)


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} must not be empty")
    return value


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    _note(env, name, default)
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port to listen on; 0 lets the system pick a free one."""
    return env_int(env, name, default, minimum=0, maximum=65_535)


def env_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None
) -> float:
    _note(env, name, default)
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    _note(env, name, default)
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in env.get(name, default).split(",") if part.strip())
    if not items:
        raise SettingsError(f"{name} must list at least one value")
    return items
