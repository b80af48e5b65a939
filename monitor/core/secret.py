"""What a secret looks like: a webhook signing secret's shape (checked by the config, used by
the verifier), and the names of URL parameters that carry credentials (masked by the store,
warned about by the config)."""

from __future__ import annotations

import base64
import binascii
import re


def is_credential_name(name: str) -> bool:
    """True for a URL query parameter that carries a credential (``password``,
    ``sslpassword``, ``auth_token``, ``client_secret``, ...)."""
    return _CREDENTIAL_NAME.search(name) is not None


_CREDENTIAL_NAME = re.compile(r"password|secret|token", re.IGNORECASE)


def is_valid_secret(secret: str) -> bool:
    """True for ``whsec_<base64>`` (or bare base64) of at least 16 bytes of key."""
    text = secret.removeprefix("whsec_")
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", text):
        return False
    try:
        return len(secret_key(secret)) >= 16
    except (binascii.Error, ValueError):
        return False


def secret_key(secret: str) -> bytes:
    """The key bytes of ``whsec_<base64>``; raises binascii.Error if it is not base64."""
    return base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
