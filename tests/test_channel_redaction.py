"""A failing channel's error (logged, stored as the notification's last_error) names no part
of its URL: not the password however short, not the user, not the host."""

from __future__ import annotations

import re

import pytest

from monitor.alerts.notifier import Channel, redact, secret_fragments
from monitor.core.model import Message
from monitor.errors import DeliveryError
from tests.support.daemon import free_port
from tests.support.receiver import Receiver

MESSAGE = Message("Line +12025550101 is CRITICAL", "details")


async def error_of(channel: Channel) -> str:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(MESSAGE, timeout=20)
    return str(caught.value)


async def test_a_refused_connection_names_neither_the_host_nor_the_credentials() -> None:
    port = free_port()  # nothing listens there
    channel = Channel("ops", f"json://bob:pw9@127.0.0.1:{port}/hooks/linq")

    error = await error_of(channel)

    assert "error" in error.lower()  # still says what happened
    for part in ("127.0.0.1", str(port), "bob", "pw9"):
        assert part not in error, (part, error)


async def test_a_channel_answering_500_names_neither_the_host_nor_the_credentials(
        receiver: Receiver) -> None:
    receiver.set_status(500)
    url = receiver.url("ops").replace("json://", "json://al:k7@", 1)
    channel = Channel("ops", url)

    error = await error_of(channel)

    assert "500" in error or "error" in error.lower()
    for part in ("127.0.0.1", f":{receiver.port}", "k7"):
        assert part not in error, (part, error)
    assert re.search(r"\bal\b", error) is None, error


def test_a_short_secret_is_redacted_only_where_it_stands_alone() -> None:
    fragments = secret_fragments("json://al:k7@hooks.example.net/x")
    text = "POST to hooks.example.net as al with k7 failed; k7x and walk are words"
    assert redact(text, fragments) == \
        "POST to *** as *** with *** failed; k7x and walk are words"


def test_a_token_in_the_host_or_after_a_colon_is_redacted() -> None:
    fragments = secret_fragments("tgram://123456:AbC/987")
    assert redact("bot 123456:AbC chat 987 said AbC", fragments) == \
        "bot *** chat *** said ***"
