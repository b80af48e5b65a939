"""TLS to the Linq API: always verified, a custom CA bundle allowed, no way to turn it off.

A local HTTPS server (certificates from ``trustme``, a throw-away CA) answers the list
endpoint; the real client, built from a real config file, talks to it over a socket.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from monitor.api.client import LinqClient
from monitor.config import load_config
from monitor.errors import ApiError, ConfigError
from monitor.service.runtime import Runtime, open_database

FIXTURE = (Path(__file__).parent / "fixtures" / "phone_numbers.json").read_bytes()


class HttpsApi:
    """The list endpoint over HTTPS with a certificate from ``ca`` for ``hostnames``."""

    def __init__(self, ca: trustme.CA, *hostnames: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(FIXTURE)))
                self.end_headers()
                self.wfile.write(FIXTURE)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*hostnames).configure_cert(context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def api(ca: trustme.CA) -> Iterator[HttpsApi]:
    server = HttpsApi(ca, "127.0.0.1")
    yield server
    server.close()


def write_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[[accounts]]
name = "main"
base_url = "{url}"
token_env = "TLS_TEST_TOKEN"
max_retries = 0
timeout = "5s"
{extra}

[database]
url = "sqlite:///{tmp_path / 'monitor.db'}"
""")
    return path


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLS_TEST_TOKEN", "tls-token")


async def poll_once(config_path: Path) -> tuple[bool, str | None]:
    config = load_config(config_path)
    engine, sessions = open_database(config)
    async with Runtime(config, engine, sessions) as runtime:
        outcome = await runtime.pollers["main"].poll()
    return outcome.ok, outcome.error


async def test_it_refuses_a_server_that_the_system_trust_store_does_not_vouch_for(
        api: HttpsApi) -> None:
    async with LinqClient(base_url=api.url, token="tls-token", max_retries=0) as client:
        with pytest.raises(ApiError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.list_phone_numbers()


async def test_a_ca_bundle_next_to_the_config_is_trusted(
        tmp_path: Path, ca: trustme.CA, api: HttpsApi) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "linq-ca.pem"))
    ok, error = await poll_once(write_config(tmp_path, api.url, 'ca_bundle = "linq-ca.pem"'))
    assert ok, error


async def test_a_bundle_of_another_ca_is_not_enough(tmp_path: Path, api: HttpsApi) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    ok, error = await poll_once(write_config(tmp_path, api.url, 'ca_bundle = "other-ca.pem"'))
    assert not ok and error is not None and "CERTIFICATE_VERIFY_FAILED" in error


async def test_a_certificate_for_another_host_is_refused_even_from_the_trusted_ca(
        tmp_path: Path, ca: trustme.CA) -> None:
    server = HttpsApi(ca, "api.linqapp.com")
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "linq-ca.pem"))
        ok, error = await poll_once(write_config(tmp_path, server.url,
                                                 'ca_bundle = "linq-ca.pem"'))
    finally:
        server.close()
    assert not ok and error is not None and "CERTIFICATE_VERIFY_FAILED" in error


@pytest.mark.parametrize("key", ["verify", "tls_verify", "ssl_verify", "insecure"])
def test_there_is_no_key_to_turn_verification_off(tmp_path: Path, key: str) -> None:
    value = "true" if key == "insecure" else "false"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, "https://api.example.com", f"{key} = {value}"))
    assert info.value.key == f"accounts[0].{key}"


@pytest.mark.parametrize("content", [None, b"", b"not a certificate\n"],
                         ids=["missing", "empty", "not_pem"])
def test_an_unusable_ca_bundle_is_refused_at_start_naming_the_key(
        tmp_path: Path, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / "ca.pem").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, "https://api.example.com", 'ca_bundle = "ca.pem"'))
    assert info.value.key == "accounts[0].ca_bundle"
    assert "ca.pem" in str(info.value)
