"""The JSON the listing commands print with ``--json``: one function per documented shape.

docs/cli.md documents every shape; a key is only ever added, never renamed or removed, so
a script written against it keeps working. Times are ISO 8601 with their UTC offset,
durations are seconds. Nothing secret appears: channel URLs give only their scheme,
tokens only where they come from, the database URL has its password hidden.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from monitor.config import DEFAULT_TOKEN_ENV, AccountConfig, Config
from monitor.core.silence import Silence
from monitor.store.engine import safe_url


def dump(value: Any) -> str:
    return json.dumps(value, indent=2)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def line_json(line: Any, *, name: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    """One line of ``status --json``."""
    return {"account": line.account, "phone_number": line.phone_number,
            "line_id": line.line_id, "status": line.status, "since": line.since.isoformat(),
            "doc_url": line.doc_url, "line_type": line.line_type, "present": line.present,
            "service_status": line.service_status, "name": name, "labels": dict(labels)}


def silence_json(silence: Silence, now: datetime) -> dict[str, Any]:
    """One silence of ``silence list --json``."""
    return {"id": silence.id, "matcher": {"kind": silence.kind.value, "value": silence.value},
            "reason": silence.reason, "created_by": silence.created_by,
            "created_at": silence.created_at.isoformat(),
            "starts_at": silence.starts_at.isoformat(), "ends_at": silence.ends_at.isoformat(),
            "expired_at": iso(silence.expired_at), "expired_by": silence.expired_by,
            "until": silence.until.isoformat(),
            "state": silence.state(now)}


def test_alert_json(results: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """``test-alert --json``: each channel and whether it took the test message."""
    return {"ok": bool(results) and all(error is None for _, error in results),
            "channels": [{"name": name, "delivered": error is None, "error": error}
                         for name, error in results]}


def config_json(config: Config) -> dict[str, Any]:
    """``check-config --json``: what the config sets up (printed only when it is valid)."""
    url = config.database_url()
    return {
        "ok": True,
        "accounts": [_account_json(a) for a in config.accounts],
        "database": {"url": safe_url(url),
                     "replicas": "one" if url.startswith("sqlite") else "many",
                     "retention_seconds": _seconds(config.database.retention)},
        "server": {"listen": config.server.listen,
                   "api_token_env": config.server.api_token_env,
                   "api_token_file": (None if config.server.api_token_file is None
                                      else str(config.server.api_token_file)),
                   "protect_metrics": config.server.protect_metrics},
        "alerts": {
            "notify_recovery": config.alerts.notify_recovery,
            "give_up_after_seconds": config.alerts.give_up_after.total_seconds(),
            "delivery_timeout_seconds": config.alerts.delivery_timeout.total_seconds(),
            "channels": [{
                "name": c.name,
                "scheme": urlsplit(c.apprise_url.get_secret_value()).scheme,
                "min_status": c.min_status, "accounts": list(c.accounts),
                "labels": dict(c.labels), "digest": c.digest,
                "quiet_hours": c.quiet_hours, "timezone": c.timezone,
            } for c in config.alerts.channels],
        },
        "lines": len(config.lines),
        "warnings": list(config.warnings),
    }


def _account_json(account: AccountConfig) -> dict[str, Any]:
    if account.token is not None:
        token = {"from": "inline"}
    elif account.token_file is not None:
        token = {"from": "file", "file": str(account.token_file)}
    else:
        token = {"from": "env", "env": account.token_env or DEFAULT_TOKEN_ENV}
    return {"name": account.name, "base_url": account.base_url,
            "poll_interval_seconds": account.poll_interval.total_seconds(),
            "token": token, "webhooks": account.webhook_secret is not None,
            "audit_on": list(account.audit_on)}


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None
