"""Where the demo lives on disk, and how it names paths to the user."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]


def shown(path: Path) -> str:
    """`path` relative to the working directory when it is under it, else as it is."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)
