"""The demo's scenario: its options, the sandbox's config and the services' environment.

Pure functions of the options, except `choose_ports`, which probes the local ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from cli.demo.paths import ROOT
from devstack.procs import free_port, port_is_free
from runtime import defaults

MAIN_SENDER: Final = defaults.DEFAULT_PHONE_NUMBER_ID
LOW_TIER_SENDER: Final = "106540352242923"
LOW_TIER: Final = 250
# They start together: the sandbox retries webhooks until the bridge is up, intake
# retries the accounts lookup until the sandbox is.
SERVICES: Final = ("sandbox", "webhook_bridge", "projector", "consumer", "console")
PORT_VARIABLES: Final = {
    "sandbox": ("SANDBOX_PORT", defaults.SANDBOX_PORT),
    "webhook_bridge": ("WEBHOOK_BRIDGE_PORT", defaults.WEBHOOK_BRIDGE_PORT),
    "projector": ("PROJECTOR_METRICS_PORT", defaults.PROJECTOR_METRICS_PORT),
    "consumer": ("CONSUMER_METRICS_PORT", defaults.CONSUMER_METRICS_PORT),
    "console": ("CONSOLE_PORT", defaults.CONSOLE_PORT),
}
_OWN_PREFIXES: Final = ("SANDBOX_", "KIRIM_")


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    recipients: int = 10_000
    low_tier_recipients: int = 600
    window_seconds: int = 20
    write_per_minute: int = 6_000
    interval: float = 1.0
    max_seconds: float = 300.0
    keep_running: bool = False
    bootstrap_servers: str | None = None
    database_url: str | None = None
    log_dir: Path = ROOT / ".run" / "demo"


def sandbox_config(options: DemoOptions) -> dict[str, Any]:
    """The sandbox's config document (docs/sandbox.md): two numbers and a realistic mix."""
    return {
        # Lifecycle delays are in sandbox seconds: sent 1 s, delivered 3 s later, read
        # 10 s later, run 5 times faster on the wall clock.
        "time_scale": 5.0,
        "rate_limits": {
            "plan": "enterprise",
            "write_per_minute": options.write_per_minute,
            "read_per_minute": 60_000,
        },
        "quota": {"window_seconds": options.window_seconds},
        "accounts": {
            MAIN_SENDER: {
                "phone_number": "+6281100000001",
                "name": "Toko Demo Jakarta",
                "messaging_tier": 10_000,
            },
            LOW_TIER_SENDER: {
                "phone_number": "+6281100000002",
                "name": "Toko Demo Bandung",
                "messaging_tier": LOW_TIER,
                "waba_id": "102290129340399",
            },
        },
        "outcomes": {
            "seed": 7,
            "mix": {
                "recipient_not_on_whatsapp": 0.02,
                "recipient_blocked": 0.005,
                # Accepted, then failed: sent again under a new key generation.
                "whatsapp_upstream_error": 0.002,
            },
            "read_share": 0.7,
            "delays": {"sent": 1.0, "delivered": 3.0, "read": 10.0, "failed": 2.0},
        },
        # A few upstream errors (502), which the dispatcher retries with the same key.
        "faults": {
            "server_errors": {
                "probability": 0.003,
                "status": 502,
                "code": "whatsapp_upstream_error",
            }
        },
    }


def service_environment(
    base: Mapping[str, str],
    *,
    bootstrap_servers: str,
    database_url: str,
    ports: Mapping[str, int],
    secret: str,
    options: DemoOptions,
    console_token: str,
) -> dict[str, str]:
    """One environment for the services (and the CLI's settings)."""
    # An inherited SANDBOX_* or KIRIM_* variable would override the scenario (a real API
    # key, another quota window): the demo sets its own.
    env = {name: value for name, value in base.items() if not name.startswith(_OWN_PREFIXES)}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "DATABASE_URL": database_url,
            "KIRIM_BASE_URL": f"http://127.0.0.1:{ports['sandbox']}/v1",
            "KIRIM_API_KEY": defaults.KIRIM_API_KEY,
            "KIRIM_WEBHOOK_SECRETS": secret,
            # The sandbox reads the same variable: both sides agree on the window.
            "QUOTA_WINDOW_SECONDS": str(options.window_seconds),
            "QUOTA_MARGIN_SECONDS": "2",
            # A failed message waits this long for a late multi-device delivery before it
            # is sent again: seconds here, as the demo compresses time.
            "DISPATCH_FAILURE_RECHECK_SECONDS": "3",
            "SANDBOX_CONFIG": msgspec.json.encode(sandbox_config(options)).decode(),
            "SANDBOX_WEBHOOK_URL": (
                f"http://127.0.0.1:{ports['webhook_bridge']}{defaults.WEBHOOK_PATH}"
            ),
            "SANDBOX_LOG_LEVEL": "WARNING",
            # The operator console: one operator, this run's token (printed by the demo).
            "CONSOLE_TOKEN": console_token,
            "CONSOLE_LIVE_INTERVAL": "1",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for service, (variable, _) in PORT_VARIABLES.items():
        env[variable] = str(ports[service])
    return env


def choose_ports(*, prefer_contract: bool = True) -> tuple[dict[str, int], list[str]]:
    """The contract's port of each service when free, a free one otherwise (with a note).

    `prefer_contract=False` takes free ports only: after a clash, when another program
    has shown that it binds the contract's ports too."""
    ports: dict[str, int] = {}
    notes: list[str] = []
    for service, (_, preferred) in PORT_VARIABLES.items():
        usable = prefer_contract and port_is_free(preferred)
        ports[service] = preferred if usable else free_port()
        if ports[service] != preferred and prefer_contract:
            notes.append(f"port {preferred} is busy: {service} uses {ports[service]}")
    return ports, notes
