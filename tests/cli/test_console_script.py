"""The installed `broadcast` console script, end to end in a child process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg

from cli.errors import NOT_FOUND, OK, UNAVAILABLE, USAGE
from tests.cli.conftest import Row, new_phone, seed

SCRIPT = Path(sys.executable).with_name("broadcast")
REPO_ROOT = Path(__file__).resolve().parents[2]


async def run_script(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *argv,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_help_lists_every_command() -> None:
    code, out, err = await run_script("--help")
    assert (code, err) == (OK, "")
    for command in (
        "publish",
        "status",
        "failed",
        "retry",
        "pause",
        "resume",
        "cancel",
        "suppression",
        "senders",
        "projector",
        "doctor",
        "demo",
    ):
        assert f"    {command}" in out
    code, out, _ = await run_script("retry", "--help")
    assert code == OK
    assert "--include-unknown" in out


async def test_a_real_command_and_its_errors(cli_env: dict[str, str], dead_bootstrap: str) -> None:
    phone = new_phone()
    code, out, err = await run_script("suppression", "add", phone, "--json", env=cli_env)
    assert (code, err) == (OK, "")
    assert f'"phone":"{phone}"' in out

    campaign = str(uuid.uuid4())
    code, out, err = await run_script("status", campaign, env=cli_env)
    assert (code, out, err) == (NOT_FOUND, "", f"broadcast: campaign {campaign} not found\n")

    code, _, err = await run_script("status", env=cli_env)
    assert code == USAGE
    assert err.count("\n") == 1

    # Kafka down: one line, no library log noise, bounded.
    code, _, err = await run_script(
        "cancel",
        campaign,
        "--timeout",
        "3",
        env={**cli_env, "KAFKA_BOOTSTRAP_SERVERS": dead_bootstrap},
    )
    assert code == UNAVAILABLE
    assert err.count("\n") == 1
    assert err.startswith("broadcast: Kafka unavailable")

    code, _, err = await run_script(
        "status", campaign, env={**cli_env, "BROADCAST_TIMEOUT": "soon"}
    )
    assert (code, err) == (USAGE, "broadcast: BROADCAST_TIMEOUT must be a number, got 'soon'\n")


async def test_ctrl_c_ends_a_watch_cleanly(cli_env: dict[str, str], db_pool: asyncpg.Pool) -> None:
    campaign = await seed(db_pool, [Row(new_phone())])
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "status",
        str(campaign),
        "--watch",
        "--interval",
        "0.2",
        env={"PATH": os.environ.get("PATH", ""), **cli_env},
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert f" {campaign} active 0.0% done 0/1 " in first.decode()
    process.send_signal(signal.SIGINT)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        # Say whose side hung: the child's (its signal dispositions, where it waits) or
        # ours (a zombie not reaped, or gone).
        state = process_state(process.pid)
        process.kill()
        out, err = await asyncio.wait_for(process.communicate(), 30)
        raise AssertionError(
            f"no exit 30 s after SIGINT; child: {state}; stdout {out[-300:]!r}; "
            f"stderr {err[-1000:]!r}"
        ) from None
    assert process.returncode == OK
    assert "Traceback" not in err.decode()


def _sigint_as_in_a_terminal() -> None:
    # A job a non-interactive shell starts in the background (`cmd &`, as CI runners and
    # `nohup` do) inherits SIGINT ignored, and Python then keeps it ignored, as Unix
    # programs should: Ctrl-C reaches only a terminal's foreground job, where SIGINT is
    # at its default. This test is about that job.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def process_state(pid: int) -> str:
    """The kernel's view of a process: state, signal masks, threads, where it waits."""
    proc = Path("/proc") / str(pid)
    try:
        status = (proc / "status").read_text()
        wchan = (proc / "wchan").read_text()
    except OSError as error:
        return f"no /proc entry ({error.strerror})"
    fields = ("State", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    kept = [line for line in status.splitlines() if line.split(":")[0] in fields]
    return " ".join(" ".join(line.split()) for line in kept) + f" wchan {wchan or '-'}"
