"""Hostile requests to the daemon's real socket get a 4xx, never a 5xx (SECURITY.md):
bytes no header should hold, and a chunked body with no Content-Length past the limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import new_secret
from tests.support.daemon import DaemonProcess, write_config

LIMIT = 4096


@pytest.fixture
def daemon(tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonProcess]:
    monkeypatch.setenv("HOSTILE_WEBHOOK_SECRET", new_secret())
    sim.add_line("+12025550101")
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url,
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}", poll_interval="1h",
        extra_account='webhook_secret_env = "HOSTILE_WEBHOOK_SECRET"\n'
                      "accept_legacy_signatures = true")
    config.write_text(config.read_text().replace(  # into [server]
        'listen = "', f'max_body_bytes = {LIMIT}\nlisten = "', 1))
    running = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        yield running
    finally:
        running.stop()


def test_a_legacy_signature_of_non_ascii_bytes_is_a_401_not_a_500(
        daemon: DaemonProcess) -> None:
    now = str(int(time.time())).encode()
    for signature in (b"\xff\xfe\xfd", "é".encode() * 32, b"sha256=\xc3\xa9"):
        response = httpx.post(daemon.url + "/webhooks/linq", content=b"{}", headers={
            "x-webhook-signature": signature, "x-webhook-timestamp": now})
        assert response.status_code == 401, (signature, response.status_code)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = {"webhook-id": b"msg_1", "webhook-timestamp": now,
                   "webhook-signature": b"v1,abc", name: b"\xe9\xff"}
        response = httpx.post(daemon.url + "/webhooks/linq", content=b"{}", headers=headers)
        assert response.status_code == 401, (name, response.status_code)
    assert "Traceback" not in daemon.log()


def test_a_chunked_body_past_the_limit_is_a_413_not_a_500(daemon: DaemonProcess) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server learns the size late
        for _ in range(LIMIT // 512 + 4):
            yield b"x" * 512

    response = httpx.post(daemon.url + "/webhooks/linq", content=chunks())
    assert response.status_code == 413, (response.status_code, response.text)
    small = httpx.post(daemon.url + "/webhooks/linq", content=iter([b"{", b"}"]))
    assert small.status_code == 401  # under the limit, chunked is read and judged as usual
    assert httpx.get(daemon.url + "/healthz").status_code == 200
    assert "Traceback" not in daemon.log()
