"""A real Prometheus as a child process, for the observability test.

Prometheus runs under coreutils' `timeout`, so it cannot outlive a killed test by long.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Prometheus' hard limit: well past any one test run, short enough not to linger.
PROMETHEUS_MAX_SECONDS = 300


def prometheus_argv(config: Path, data_dir: Path, port: int) -> list[str]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise RuntimeError("prometheus is not installed")
    argv = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    timeout = shutil.which("timeout")
    if timeout is not None:
        argv = [timeout, "--kill-after=10", str(PROMETHEUS_MAX_SECONDS), *argv]
    return argv
