"""The local receiver the alert tests count messages with: a request cut short (its sender
killed mid-send, as the kill -9 tests do) is no message, so it cannot be counted as a
stranger or a duplicate."""

from __future__ import annotations

import socket

import pytest

from tests.support.receiver import Receiver

HEAD = b"POST /pager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("sent", [b"", b'{"title": '], ids=["head_only", "part_of_the_body"])
def test_a_request_cut_short_is_not_recorded_and_a_whole_one_is(sent: bytes) -> None:
    with Receiver() as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as cut:
            cut.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + sent)
            cut.shutdown(socket.SHUT_WR)  # the sender is gone
            while cut.recv(4096):  # the receiver has handled it once it closes
                pass
        body = b'{"title": "whole", "message": "m"}'
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as whole:
            whole.sendall(HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

            got = receiver.wait_for(1, path="pager")

        assert [m.title for m in got] == ["whole"]
