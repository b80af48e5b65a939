"""``reputation-monitor webhook register|list|delete``: Linq's webhook subscriptions.

``register`` subscribes ``phone_number.status_updated`` (and, with ``--chats``, the message
and chat events that carry a chat's health) to an HTTPS URL and prints the signing secret:
Linq shows it only this once, so the output says where to put it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from monitor import __version__
from monitor.api.client import _error_from_response, _transport_reason, tls_verify
from monitor.config import DEFAULT_WEBHOOK_SECRET_ENV, AccountConfig, Config
from monitor.errors import ApiError, ConfigError
from monitor.webhooks.event import STATUS_UPDATED

# The events whose data carries ``chat.health_status`` (or the whole chat): chat health
# applied as it happens, between two sweeps.
CHAT_EVENTS = ("message.sent", "message.received", "message.delivered", "message.read",
               "message.failed", "chat.created")

PATH = "/v3/webhook-subscriptions"


def pick_account(config: Config, name: str | None) -> AccountConfig:
    if name is None:
        if len(config.accounts) == 1:
            return config.accounts[0]
        raise ConfigError("--account", "several accounts are configured: name one")
    for account in config.accounts:
        if account.name == name:
            return account
    raise ConfigError("--account", f"no account named {name!r}")


async def _call(account: AccountConfig, method: str, path: str,
                body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(
        base_url=account.base_url, timeout=account.timeout.total_seconds(),
        verify=tls_verify(account.ca_bundle_path),
        headers={"Authorization": f"Bearer {account.api_token.get_secret_value()}",
                 "Accept": "application/json",
                 "User-Agent": f"linq-reputation-monitor/{__version__}"},
    ) as http:
        try:
            response = await http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ApiError(f"connection failed: {_transport_reason(exc)}") from None
    if not response.is_success:
        raise _error_from_response(response)
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ApiError("the answer is not JSON") from None


async def register(config: Config, *, account_name: str | None, url: str,
                   chats: bool = False) -> str:
    if not url.startswith("https://"):
        raise ConfigError("--url", "Linq only delivers to https:// URLs")
    account = pick_account(config, account_name)
    events = [STATUS_UPDATED, *(CHAT_EVENTS if chats else ())]
    created = await _call(account, "POST", PATH, {"target_url": url,
                                                  "subscribed_events": events})
    if not isinstance(created, dict):
        raise ApiError("the answer is not a subscription")
    secret = created.get("signing_secret")
    variable = account.webhook_secret_env or DEFAULT_WEBHOOK_SECRET_ENV
    return "\n".join([
        f"subscribed {', '.join(events)} for account {account.name}: "
        f"id {created.get('id', '?')}, target {created.get('target_url', url)}",
        "",
        f"signing secret (Linq shows it only now): {secret}",
        f"Put it in the daemon's environment as {variable} (or a secret store feeding it),",
        "restart the daemon, and check that a test event is accepted "
        "(linq_reputation_webhooks_total{outcome=\"accepted\"}).",
    ])


async def list_subscriptions(config: Config, *, account_name: str | None,
                             as_json: bool = False) -> str:
    """The account's subscriptions, as lines for people or as JSON (docs/cli.md):
    ``{"account": ..., "subscriptions": [{"id", "target_url", "subscribed_events",
    "is_active"}]}``. Only those keys: a signing secret in the answer is never printed."""
    account = pick_account(config, account_name)
    found = await _call(account, "GET", PATH)
    items = _items(found)
    if as_json:
        return orjson.dumps({"account": account.name, "subscriptions": [{
            "id": item.get("id"), "target_url": item.get("target_url"),
            "subscribed_events": list(item.get("subscribed_events") or []),
            "is_active": bool(item.get("is_active", True)),
        } for item in items]}, option=orjson.OPT_INDENT_2).decode()
    if not items:
        return f"account {account.name}: no webhook subscriptions"
    lines = [f"account {account.name}:"]
    for item in items:
        events = ",".join(item.get("subscribed_events") or [])
        active = "active" if item.get("is_active", True) else "inactive"
        lines.append(f"  {item.get('id')}  {item.get('target_url')}  {events}  {active}")
    return "\n".join(lines)


async def fetch_subscriptions(account: AccountConfig) -> list[dict[str, Any]]:
    """The account's webhook subscriptions as Linq lists them. Raises ApiError."""
    return _items(await _call(account, "GET", PATH))


async def delete(config: Config, *, account_name: str | None, subscription_id: str) -> str:
    account = pick_account(config, account_name)
    await _call(account, "DELETE", f"{PATH}/{quote(subscription_id, safe='')}")
    return f"account {account.name}: deleted webhook subscription {subscription_id}"


def _items(found: Any) -> list[dict[str, Any]]:
    if isinstance(found, dict):
        for key in ("subscriptions", "webhook_subscriptions", "data"):
            if isinstance(found.get(key), list):
                found = found[key]
                break
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []
