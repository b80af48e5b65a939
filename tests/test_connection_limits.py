"""A flood of idle and slow-header connections does not lock out /healthz and /metrics.

A real daemon process (SQLite, the simulator on a real socket), started with a soft
open-file limit of 256, like the review's probe (``ulimit -n 256``). 500 client sockets
are opened against it: half just connect, half send a request head one header at a time
and never finish it. Meanwhile fresh clients ask /healthz and /metrics. Then each limit
alone, on the daemon's server in-process: the request-head deadline, the connection cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.http.connections import fd_budget
from monitor.http.server import make_server
from monitor.service.daemon import bind
from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, migrated_config

FLOOD = 500
DAEMON_FILES = 256


@contextlib.contextmanager
def open_files(soft: int) -> Iterator[None]:
    """This process's soft open-file limit set to ``soft`` for the duration."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


@pytest.fixture
def daemon(tmp_path: Path, sim: Simulator, sim_server: SimulatorServer) -> Iterator[DaemonProcess]:
    sim.add_line("+12025550101")
    config = migrated_config(tmp_path, base_url=sim_server.url, poll_interval="1h")
    config.write_text(config.read_text().replace("[server]\n",
                                                 '[server]\nheader_timeout = "2s"\n'))
    with open_files(DAEMON_FILES):  # inherited by the daemon only: restored at once
        process = DaemonProcess(config, log=tmp_path / "daemon.log")
        process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow  # a real daemon, 500 sockets
def test_health_and_metrics_answer_while_500_idle_and_trickling_connections_are_open(
        daemon: DaemonProcess) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 200:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for {FLOOD} sockets")
    host, port = daemon.url.removeprefix("http://").split(":")
    flood: list[socket.socket] = []
    with open_files(max(FLOOD + 200, 1024)):
        try:
            for i in range(FLOOD):
                sock = socket.create_connection((host, int(port)), timeout=5)
                if i % 2:  # a slow-header client: a head begun, never finished
                    sock.sendall(b"POST /webhooks/linq HTTP/1.1\r\nHost: x\r\n")
                flood.append(sock)
            answers = []
            for _ in range(3):
                for sock in flood[1::2]:  # trickle one more header byte each
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
                with httpx.Client(timeout=10) as client:
                    answers.append(client.get(daemon.url + "/healthz").status_code)
                    answers.append(client.get(daemon.url + "/metrics").status_code)
            assert answers == [200] * 6

            # The idle ones are closed by the server (head deadline, or to make room).
            first = flood[0]
            first.settimeout(15)
            with contextlib.suppress(ConnectionResetError):
                assert first.recv(1) == b""
        finally:
            for sock in flood:
                sock.close()
    assert "max_connections 1000 lowered to 128" in daemon.log()
    # The daemon keeps serving after the flood is gone.
    assert httpx.get(daemon.url + "/healthz", timeout=10).status_code == 200


async def ok_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"ok\n"})


@contextlib.asynccontextmanager
async def serving(**limits: Any) -> AsyncIterator[int]:
    listen = bind("127.0.0.1", 0)
    server = make_server(ok_app, host="127.0.0.1", port=0, **limits)
    task = asyncio.create_task(server.serve(sockets=[listen]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield listen.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 10) == b""
    except ConnectionResetError:
        return True


async def test_a_request_head_not_finished_in_time_gets_the_connection_closed() -> None:
    async with serving(max_connections=100, header_timeout=0.5) as port:
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
        slow.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert await closed_by_server(slow_reader)
        slow.close()
        async with httpx.AsyncClient() as client:  # a complete request is answered
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200


async def test_past_max_connections_the_longest_idle_ones_make_room() -> None:
    async with serving(max_connections=8, header_timeout=60) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
        closed = [await closed_by_server(reader) for reader, _ in idle[:12]]
        assert all(closed)
        for _, writer in idle:
            writer.close()


def test_the_cap_is_lowered_to_fit_the_open_file_limit(tmp_path: Path) -> None:
    limits = tmp_path / "limits"
    limits.write_text("Limit                     Soft Limit           Hard Limit           Units\n"
                      "Max open files            256                  4096                 files\n")
    assert fd_budget(1000, limits_file=limits) == 128
    assert fd_budget(100, limits_file=limits) == 100
    assert fd_budget(1000, limits_file=tmp_path / "missing") == 1000
