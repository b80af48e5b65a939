"""Signature checks, with every signature made by the reference library (standardwebhooks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from monitor.core.secret import is_valid_secret
from monitor.errors import WebhookRejected
from monitor.webhooks.verify import Signer, verify

SECRET = "whsec_" + base64.b64encode(b"main-account-signing-key-32bytes").decode()
OTHER = "whsec_" + base64.b64encode(b"eu-account-signing-key-of-32byte").decode()
BODY = b'{"event_type":"phone_number.status_updated","data":{"phone_number":"+12025550101"}}'


def signed(body: bytes = BODY, *, secret: str = SECRET, offset: float = 0,
           msg_id: str = "msg_2915e81c") -> dict[str, str]:
    """Headers as a Standard Webhooks sender makes them, via the reference implementation."""
    moment = datetime.fromtimestamp(time.time() + offset, UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature}


SIGNERS = [Signer("main", SECRET), Signer("eu", OTHER)]


def test_it_accepts_a_valid_signature_and_names_the_account_whose_secret_matches() -> None:
    assert verify(BODY, signed(), SIGNERS).account == "main"
    assert verify(BODY, signed(secret=OTHER), SIGNERS).account == "eu"
    assert verify(BODY, signed(), SIGNERS).webhook_id == "msg_2915e81c"


def test_it_rejects_a_tampered_body() -> None:
    headers = signed()
    with pytest.raises(WebhookRejected):
        verify(BODY.replace(b"0101", b"0102"), headers, SIGNERS)


def test_it_rejects_a_signature_made_with_another_secret() -> None:
    stranger = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookRejected):
        verify(BODY, signed(secret=stranger), SIGNERS)


def test_it_rejects_a_replayed_signature_under_another_id() -> None:
    headers = signed()
    headers["webhook-id"] = "msg_other"
    with pytest.raises(WebhookRejected):
        verify(BODY, headers, SIGNERS)


@pytest.mark.parametrize("offset", [-6 * 60, 6 * 60])
def test_it_rejects_timestamps_more_than_five_minutes_off(offset: int) -> None:
    with pytest.raises(WebhookRejected, match="timestamp"):
        verify(BODY, signed(offset=offset), SIGNERS)


def test_it_accepts_timestamps_within_five_minutes() -> None:
    assert verify(BODY, signed(offset=-4 * 60), SIGNERS).account == "main"
    assert verify(BODY, signed(offset=4 * 60), SIGNERS).account == "main"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_it_rejects_a_request_missing_a_signature_header(missing: str) -> None:
    headers = signed()
    del headers[missing]
    with pytest.raises(WebhookRejected):
        verify(BODY, headers, SIGNERS)


@pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v1", "v2,AAAA", ""])
def test_it_rejects_malformed_signature_headers_without_crashing(signature: str) -> None:
    headers = {**signed(), "webhook-signature": signature}
    with pytest.raises(WebhookRejected):
        verify(BODY, headers, SIGNERS)


def test_it_rejects_everything_when_no_account_has_a_secret() -> None:
    with pytest.raises(WebhookRejected):
        verify(BODY, signed(), [])


def legacy_headers(body: bytes = BODY, *, offset: float = 0) -> dict[str, str]:
    """Signed as Linq's reference for the X-Webhook-* headers verifies them: HMAC-SHA256
    keyed with the signing secret string, over ``{timestamp}.{payload}``, hex."""
    stamp = str(int(time.time() + offset))
    message = f"{stamp}.{body.decode('utf-8')}"
    digest = hmac.new(SECRET.encode("utf-8"), message.encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return {"x-webhook-timestamp": stamp, "x-webhook-signature": digest}


def test_the_legacy_signature_is_keyed_with_the_secret_string_not_the_decoded_key() -> None:
    accepting = [Signer("main", SECRET, accept_legacy=True)]
    stamp = str(int(time.time()))
    decoded = base64.b64decode(SECRET.removeprefix("whsec_"))
    keyed_by_bytes = hmac.new(decoded, stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()

    assert verify(BODY, legacy_headers(), accepting).scheme == "legacy"
    with pytest.raises(WebhookRejected):
        verify(BODY, {"x-webhook-timestamp": stamp, "x-webhook-signature": keyed_by_bytes},
               accepting)


def test_the_legacy_scheme_is_refused_unless_the_account_accepts_it() -> None:
    with pytest.raises(WebhookRejected):
        verify(BODY, legacy_headers(), SIGNERS)
    accepting = [Signer("main", SECRET, accept_legacy=True)]
    verified = verify(BODY, legacy_headers(), accepting)
    assert (verified.account, verified.scheme, verified.webhook_id) == ("main", "legacy", None)
    with pytest.raises(WebhookRejected):
        verify(BODY + b" ", legacy_headers(), accepting)
    with pytest.raises(WebhookRejected):
        verify(BODY, legacy_headers(offset=-600), accepting)


def test_a_secret_must_be_base64_key_material() -> None:
    assert is_valid_secret(SECRET)
    assert not is_valid_secret("whsec_short")
    assert not is_valid_secret("not a secret at all!")
