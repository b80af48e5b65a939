"""Signature verification of incoming webhooks (Standard Webhooks, optional legacy scheme).

Standard Webhooks is checked by the reference implementation (``standardwebhooks``): the
signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 under the
base64-decoded part of the ``whsec_`` secret, compared in constant time, with a 5-minute
tolerance on the timestamp either way.

The legacy scheme (``X-Webhook-Signature``: hex HMAC-SHA256 over ``{timestamp}.{body}``,
``X-Webhook-Timestamp``) is accepted only when an account sets
``accept_legacy_signatures``: some proxies strip the ``webhook-*`` headers. Its key is the
signing secret *string* as Linq returned it (``whsec_...``, UTF-8), not the decoded key
bytes of the standard scheme: Linq's reference for the old headers (docs.linqapp.com, the
python SDK's webhook_subscriptions page: ``hmac.new(signing_secret.encode('utf-8'),
f"{timestamp}.{payload}".encode('utf-8'), hashlib.sha256).hexdigest()``) keys it so, and
the current docs say existing ``X-Webhook-*`` verification "continues to work — no changes
required". It carries no event id, so the idempotency key is then the body's ``event_id``.

``verify`` tries every account that has a secret; the one whose secret verifies is the
account the event belongs to. Failures say why in the exception (for our log); the HTTP
answer is a bare 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import standardwebhooks

from monitor.core.secret import secret_key
from monitor.errors import WebhookRejected

TOLERANCE_SECONDS = 5 * 60


@dataclass(frozen=True, slots=True)
class Signer:
    """One account's webhook key."""

    account: str
    secret: str  # "whsec_<base64>"
    accept_legacy: bool = False

    @property
    def key(self) -> bytes:
        """The Standard Webhooks key: the base64-decoded part of the secret."""
        return secret_key(self.secret)

    @property
    def legacy_key(self) -> bytes:
        """The legacy ``X-Webhook-Signature`` key: the secret string itself."""
        return self.secret.encode()


@dataclass(frozen=True, slots=True)
class Verified:
    account: str
    webhook_id: str | None  # None for the legacy scheme (no id header)
    scheme: str  # "standard" | "legacy"


def verify(body: bytes, headers: Mapping[str, str], signers: Sequence[Signer],
           *, now: float | None = None) -> Verified:
    """Return which account signed this request; raise WebhookRejected otherwise.

    ``headers`` must be case-insensitive or lower-cased. ``now`` is only for the legacy
    scheme (the reference library reads the clock itself).
    """
    if not signers:
        raise WebhookRejected("no account has a webhook secret configured")
    standard = {k: headers.get(k, "") for k in ("webhook-id", "webhook-timestamp",
                                                "webhook-signature")}
    if all(standard.values()):
        for signer in signers:
            if _standard_ok(signer, body, standard):
                return Verified(signer.account, standard["webhook-id"], "standard")
        raise WebhookRejected("no configured secret matches the webhook-signature "
                              "(or the timestamp is more than 5 minutes off)")
    legacy = [s for s in signers if s.accept_legacy]
    signature = headers.get("x-webhook-signature", "")
    timestamp = headers.get("x-webhook-timestamp", "")
    if legacy and signature and timestamp:
        _check_timestamp(timestamp, time.time() if now is None else now)
        signed = timestamp.encode() + b"." + body
        # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError,
        # which would answer a hostile header with a 500).
        given = signature.strip().lower().encode("utf-8", "replace")
        for signer in legacy:
            expected = hmac.new(signer.legacy_key, signed, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(expected, given):
                return Verified(signer.account, None, "legacy")
        raise WebhookRejected("no configured secret matches the X-Webhook-Signature")
    raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")


def _standard_ok(signer: Signer, body: bytes, headers: Mapping[str, str]) -> bool:
    try:
        standardwebhooks.Webhook(signer.secret).verify(body, dict(headers), json_parse=False)
    except standardwebhooks.webhooks.WebhookVerificationError as exc:
        if "timestamp" in str(exc).lower() or "headers" in str(exc).lower():
            # The same for every secret: no point trying the others.
            raise WebhookRejected(f"signature check failed: {exc}") from None
        return False
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        # The reference library raises these for malformed signature entries, non-ASCII
        # header values or a body that is not UTF-8: not a valid signature either way.
        return False
    return True


def _check_timestamp(value: str, now: float) -> None:
    try:
        moment = float(value)
    except ValueError:
        raise WebhookRejected("X-Webhook-Timestamp is not a number") from None
    if not abs(now - moment) <= TOLERANCE_SECONDS:  # also false for NaN
        raise WebhookRejected("X-Webhook-Timestamp is more than 5 minutes off")


def sign(secret: str, *, webhook_id: str, timestamp: int, body: bytes,
         event_type: str = "phone_number.status_updated") -> dict[str, str]:
    """The headers Linq would send for ``body`` (the simulator and tests use it)."""
    key = secret_key(secret)
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signature = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    legacy = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                      hashlib.sha256).hexdigest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "X-Webhook-Event": event_type,
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": legacy,
    }
