"""Linq's reputation audit endpoints: start one for a line, read it back.

``POST /v3/phone_numbers/{phone}/reputation_audit`` starts an asynchronous audit (one per
line at a time); ``GET .../reputation_audit/{audit_id}`` reads it until ``complete`` or
``error``. No retries here: a 409 means an audit is already running (we attach to it), a
429 means the line's cooldown (we skip, and say so), and the caller bounds the whole wait.
Linq does not document where a 409 names the running audit; we look for ``audit_id`` at
the top level and under ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from monitor import __version__
from monitor.api.client import (
    _error_from_response,
    _retry_after,
    _transport_reason,
    tls_verify,
)
from monitor.errors import ApiError, ApiRateLimited


@dataclass(frozen=True, slots=True)
class Started:
    audit_id: str
    attached: bool  # True: an audit was already running (409) and this is that one


class AuditCooldown(ApiRateLimited):
    """429: the line's audit cooldown; ``retry_after`` says for how long."""


class AuditClient:
    def __init__(self, *, base_url: str, token: str, timeout: float = 30.0,
                 ca_bundle: Path | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "User-Agent": f"linq-reputation-monitor/{__version__}"},
            timeout=httpx.Timeout(timeout), verify=tls_verify(ca_bundle),
            follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def start(self, phone_number: str) -> Started:
        """Start an audit, or attach to the running one. Raises AuditCooldown, ApiError."""
        response = await self._request("POST", _path(phone_number))
        body = _json(response)
        if response.status_code == 409:
            audit_id = _audit_id(body) or _audit_id(body.get("error"))
            if audit_id:
                return Started(audit_id, attached=True)
            raise ApiError("an audit of this line is already running, and Linq did not say "
                           "which", status=409, trace_id=response.headers.get("x-trace-id"))
        if response.status_code == 429:
            error = _error_from_response(response)
            raise AuditCooldown(str(error), retry_after=_retry_after(response),
                                trace_id=error.trace_id)
        if not response.is_success:
            raise _error_from_response(response)
        audit_id = _audit_id(body)
        if not audit_id:
            raise ApiError("the audit answer has no audit_id",
                           trace_id=response.headers.get("x-trace-id"))
        return Started(audit_id, attached=False)

    async def get(self, phone_number: str, audit_id: str) -> dict[str, Any]:
        """The audit as Linq shows it now (``status``: pending, complete or error)."""
        response = await self._request("GET", f"{_path(phone_number)}/{quote(audit_id, '')}")
        if not response.is_success:
            raise _error_from_response(response)
        return _json(response)

    async def _request(self, method: str, path: str) -> httpx.Response:
        try:
            return await self._http.request(method, path)
        except httpx.TimeoutException as exc:
            raise ApiError(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ApiError(f"connection failed: {_transport_reason(exc)}") from None


def _path(phone_number: str) -> str:
    return f"/v3/phone_numbers/{quote(phone_number, safe='')}/reputation_audit"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _audit_id(value: object) -> str | None:
    if isinstance(value, dict):
        found = value.get("audit_id") or value.get("id")
        if isinstance(found, str) and found:
            return found
    return None
