"""The Linq client against the simulator over a real socket: retries, Retry-After, errors."""

from __future__ import annotations

import time

import pytest

from monitor.api.client import LinqClient
from monitor.errors import ApiAuthError, ApiError, ApiPayloadError, ApiRateLimited
from monitor.simulator import Simulator, SimulatorServer


def client(server: SimulatorServer, *, token: str = "sim-token", retries: int = 2,
           timeout: float = 5) -> LinqClient:
    return LinqClient(base_url=server.url, token=token, max_retries=retries, timeout=timeout)


async def test_it_lists_lines_with_the_trace_id(sim: Simulator, sim_server: SimulatorServer
                                                ) -> None:
    sim.add_lines(3, status="AT_RISK")
    async with client(sim_server) as api:
        result = await api.list_phone_numbers()
    assert [o.status for o in result.lines.observations] == ["AT_RISK"] * 3
    assert result.trace_id is not None and len(result.trace_id) == 32


async def test_successive_answers_of_any_size_each_read_whole(sim: Simulator,
                                                              sim_server: SimulatorServer) -> None:
    # The client reads each answer into the previous one's buffer: a longer, a shorter
    # and a failed answer in between must not leave any of another's bytes behind.
    ids = sim.add_lines(50)
    async with client(sim_server, retries=0) as api:
        assert len((await api.list_phone_numbers()).lines.observations) == 50
        for line_id in ids[10:]:
            sim.remove_line(line_id)
        sim.set_status(ids[3], "CRITICAL")
        shorter = (await api.list_phone_numbers()).lines.observations
        assert [o.status for o in shorter] == ["HEALTHY"] * 3 + ["CRITICAL"] + ["HEALTHY"] * 6
        sim.queue_raw("<html>gateway</html>")
        with pytest.raises(ApiPayloadError):
            await api.list_phone_numbers()
        sim.add_lines(100, status="AT_RISK", prefix="+1303")
        longer = (await api.list_phone_numbers()).lines.observations
    assert len(longer) == 110 and longer[-1].status == "AT_RISK"


async def test_it_works_with_the_documented_base_url_path(sim: Simulator,
                                                          sim_server: SimulatorServer) -> None:
    sim.add_lines(1)
    async with LinqClient(base_url=sim_server.url + "/api/partner", token="sim-token") as api:
        assert len((await api.list_phone_numbers()).lines.observations) == 1


async def test_a_rejected_token_is_a_permanent_auth_error_with_trace_id(
        sim_server: SimulatorServer) -> None:
    async with client(sim_server, token="wrong") as api:
        with pytest.raises(ApiAuthError) as info:
            await api.list_phone_numbers()
    assert info.value.permanent and info.value.status == 401
    assert "rejected the token" in str(info.value) and "2004" in str(info.value)
    assert info.value.trace_id and len(info.value.trace_id) == 32
    assert "wrong" not in str(info.value)


async def test_it_retries_server_errors_then_succeeds(sim: Simulator,
                                                      sim_server: SimulatorServer) -> None:
    sim.add_lines(1)
    sim.queue_error(500, times=2)
    async with client(sim_server, retries=2) as api:
        result = await api.list_phone_numbers()
    assert result.attempts == 3


async def test_it_gives_up_after_the_configured_retries(sim: Simulator,
                                                        sim_server: SimulatorServer) -> None:
    sim.queue_error(503, times=3)
    async with client(sim_server, retries=1) as api:
        with pytest.raises(ApiError) as info:
            await api.list_phone_numbers()
    assert info.value.status == 503 and sim.request_count == 2


async def test_it_waits_as_long_as_retry_after_says(sim: Simulator, sim_server: SimulatorServer
                                                    ) -> None:
    sim.add_lines(1)
    sim.queue_error(429, retry_after=1)
    async with client(sim_server) as api:
        started = time.monotonic()
        result = await api.list_phone_numbers()
    assert result.attempts == 2
    assert time.monotonic() - started >= 0.95  # the server asked for a full second


async def test_a_long_retry_after_is_handed_to_the_scheduler(sim: Simulator,
                                                             sim_server: SimulatorServer) -> None:
    sim.queue_error(429, retry_after=120)
    async with client(sim_server) as api:
        with pytest.raises(ApiRateLimited) as info:
            await api.list_phone_numbers()
    assert info.value.retry_after == pytest.approx(120, abs=1)
    assert sim.request_count == 1  # it did not hammer the API


async def test_a_slow_answer_times_out(sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.queue_delay(5, times=3)
    async with client(sim_server, retries=0, timeout=0.3) as api:
        with pytest.raises(ApiError, match=r"timed out|no complete answer"):
            await api.list_phone_numbers()


async def test_a_refused_connection_is_an_api_error() -> None:
    async with LinqClient(base_url="http://127.0.0.1:9", token="t", max_retries=0) as api:
        with pytest.raises(ApiError, match="connection failed"):
            await api.list_phone_numbers()


async def test_a_non_json_body_is_a_payload_error(sim: Simulator, sim_server: SimulatorServer
                                                  ) -> None:
    sim.queue_raw("<html>gateway</html>")
    async with client(sim_server) as api:
        with pytest.raises(ApiPayloadError):
            await api.list_phone_numbers()


async def test_a_body_that_trickles_in_hits_the_overall_deadline() -> None:
    """A server that sends a byte now and then never trips a per-read timeout."""
    import asyncio

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(100):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, LinqClient(base_url=f"http://127.0.0.1:{port}", token="t",
                                  max_retries=0, timeout=1) as api:
        started = time.monotonic()
        with pytest.raises(ApiError, match="no complete answer within 1s"):
            await api.list_phone_numbers()
        assert time.monotonic() - started < 3


async def test_a_chunked_answer_without_content_length_is_read_whole() -> None:
    """The body is read into one buffer; without a length up front it grows as it comes."""
    import asyncio

    item = (b'{"id": "%d", "phone_number": "+1202555%04d", '
            b'"reputation": {"status": "AT_RISK", "doc_url": null}}')
    body = b'{"phone_numbers": [' + b", ".join(item % (i, i) for i in range(500)) + b"]}"

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/json\r\n\r\n")
        for start in range(0, len(body), 1000):
            piece = body[start:start + 1000]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(chunked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, LinqClient(base_url=f"http://127.0.0.1:{port}", token="t",
                                  max_retries=0, timeout=5) as api:
        result = await api.list_phone_numbers()
    assert [o.line_id for o in result.lines.observations] == [str(i) for i in range(500)]
    assert {o.status for o in result.lines.observations} == {"AT_RISK"}


async def test_a_429_without_retry_after_header_follows_the_bodys_retry_after(
        sim: Simulator, sim_server: SimulatorServer) -> None:
    # A proxy dropped the header; Linq's error envelope still says how long to wait.
    sim.queue_raw(b'{"error": {"status": 429, "code": 1429, "message": "slow down", '
                  b'"retry_after": 120}}', status=429)
    async with client(sim_server) as api:
        with pytest.raises(ApiRateLimited) as info:
            await api.list_phone_numbers()
    assert info.value.retry_after == pytest.approx(120)
    assert sim.request_count == 1  # handed to the scheduler, not retried at once
