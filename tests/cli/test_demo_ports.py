"""The demo's ports: a port taken between the probe and the child's bind is told apart.

Another program (a second demo, a test run beside it) may bind a contract port in the
instant between `choose_ports` and the service's own bind; the demo then starts the
four again on free ports instead of failing (CI saw it once). Worse, that program may
itself be a healthy service answering `/readyz` (CI saw that too): the demo must not take
its answer for the child's.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from cli.demo.children import PortTaken, spawn, wait_healthy
from cli.demo.config import PORT_VARIABLES, choose_ports


def test_after_a_clash_only_free_ports_are_chosen() -> None:
    ports, notes = choose_ports(prefer_contract=False)
    contract = {preferred for _, preferred in PORT_VARIABLES.values()}
    assert set(ports) == set(PORT_VARIABLES)
    assert not contract & set(ports.values())
    assert len(set(ports.values())) == len(ports)
    assert notes == []


async def test_a_service_whose_port_is_taken_raises_port_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PROJECTOR_METRICS_PORT": str(port),
            # Never reached: the port is claimed before any client opens.
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "DATABASE_URL": "postgresql://broadcast@127.0.0.1:1/broadcast",
        }
        child = await spawn("projector", env, tmp_path, port)
        with pytest.raises(PortTaken, match=f"port {port} of projector") as clash:
            await asyncio.wait_for(wait_healthy(child, deadline=float("inf")), 30)
        assert clash.value.child is child
        assert child.process.returncode == 2


async def test_a_healthy_answer_from_another_program_is_not_the_childs(tmp_path: Path) -> None:
    async def answer_ready(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    impostor = await asyncio.start_server(answer_ready, "127.0.0.1", 0)
    port = impostor.sockets[0].getsockname()[1]
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PROJECTOR_METRICS_PORT": str(port),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "DATABASE_URL": "postgresql://broadcast@127.0.0.1:1/broadcast",
        }
        child = await spawn("projector", env, tmp_path, port)
        with pytest.raises(PortTaken, match=f"port {port} of projector"):
            await asyncio.wait_for(wait_healthy(child, deadline=float("inf")), 30)
    finally:
        impostor.close()
        await impostor.wait_closed()
