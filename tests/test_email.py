"""E-mail alerts through Apprise's real mailto:// notifier to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import cli, free_port, write_config


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_a_degraded_line_arrives_as_an_email_with_its_doc_url(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
        smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    doc_url = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical-mail"
    sim.add_line("+12025550401", status="CRITICAL", doc_url=doc_url)
    url = f"mailto://127.0.0.1:{port}?from=monitor@example.com&to=oncall@example.com"
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                          channels=[("email", url, "AT_RISK")])
    result = cli("poll", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert mailbox.arrived.wait(10), "no e-mail arrived"
    (message,) = mailbox.messages
    assert "+12025550401" in message["Subject"] and "CRITICAL" in message["Subject"]
    assert message["To"] == "oncall@example.com"
    body = message.get_payload(decode=True) if not message.is_multipart() else \
        message.get_payload(0).get_payload(decode=True)
    text = body.decode()
    assert doc_url in text and "Pause outbound messaging" in text
