"""The TOML configuration: pydantic models, one clear error per bad key, secrets resolved here.

``load_config(path)`` returns a ``Config`` whose secrets (API tokens, channel URLs that embed
credentials) are already read from the environment or files and wrapped in ``SecretStr``,
so nothing downstream can print them by accident. Any problem raises ``ConfigError`` naming
the key path, e.g. ``accounts[0].poll_interval: '5 minutes' is not a duration``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.core.chats import DEFAULT_THRESHOLDS, WatchThresholds
from monitor.core.labels import LABEL_NAME, LABEL_NAME_RULE
from monitor.core.secret import is_credential_name, is_valid_secret
from monitor.core.watch import WatchOverride, WatchRules
from monitor.errors import ConfigError

DEFAULT_BASE_URL = "https://api.linqapp.com/api/partner"
DEFAULT_TOKEN_ENV = "LINQ_API_V3_API_KEY"
DEFAULT_DATABASE_URL = "sqlite:///reputation-monitor.db"
DEFAULT_WEBHOOK_SECRET_ENV = "LINQ_WEBHOOK_SECRET"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> timedelta:
    """A duration as the config and the command line write it: a number and a unit each
    (``ms``, ``s``, ``m``, ``h``, ``d``), summed: "30s", "5m", "1h30m", "7d", "250ms".
    Spaces between parts are allowed, so what ``format_duration`` prints ("3d 4h") reads
    back. Raises ValueError for anything else: a negative duration, or a bare number (60
    seconds or 60 minutes? the unit must be written)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _no_unit(str(value))
    if not isinstance(value, str):
        raise ValueError("expected a duration such as \"30s\", \"5m\" or \"1h\"")
    text = value.strip().replace(" ", "")
    if text.startswith("-"):
        raise ValueError("a duration cannot be negative")
    if _NUMBER.fullmatch(text):
        raise _no_unit(text)
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"'{value}' is not a duration (use e.g. '30s', '5m', '1h30m', '7d')")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _no_unit(number: str) -> ValueError:
    if number.startswith("-"):
        return ValueError("a duration cannot be negative")
    return ValueError(f'{number} has no unit: write "{number}s" (or ms, m, h, d)')


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _longer_than_zero(value: timedelta) -> timedelta:
    """For a duration key where zero makes no sense (a deadline, an interval, a backoff)."""
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _not_read(what: str) -> RuntimeError:
    # A programming mistake, not a bad config: a command that loads without secrets must
    # not reach for one.
    return RuntimeError(f"{what} was not read: the config was loaded with secrets=False")


def _require_unique(names: list[str], what: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names must be unique: {', '.join(dupes)}")


class _Section(BaseModel):
    # use_attribute_docstrings: the docstring under each field is its description, which
    # scripts/gen_docs.py turns into docs/reference/configuration.md.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class AccountConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Shown in alerts, metrics (the ``account`` label) and the CLI; unique."""
    base_url: str = Field(default_factory=lambda: os.environ.get("LINQ_API_V3_BASE_URL",
                                                                 DEFAULT_BASE_URL))
    """Linq's partner API: ``$LINQ_API_V3_BASE_URL`` if set, else
    ``https://api.linqapp.com/api/partner``."""
    token_env: str | None = None
    """Environment variable holding the partner token; ``LINQ_API_V3_API_KEY`` (the
    name Linq's SDKs use) when no token source is set. Set at most one of ``token_env``,
    ``token_file``, ``token``."""
    token_file: Path | None = None
    """File holding the token (e.g. ``/run/secrets/linq``); relative to the config file."""
    token: SecretStr | None = None  # inline: allowed, but warned about at start
    """Inline token; allowed, but warned about if the config file is readable by others."""
    poll_interval: Duration = timedelta(seconds=60)
    """How often the account is polled; at least ``1s``."""
    timeout: Duration = timedelta(seconds=30)
    """Deadline of each HTTP request."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries on connection errors, timeouts, 408, 409, 429 and 5xx."""
    ca_bundle: Path | None = None
    """CA bundle (PEM) to trust instead of the system store, relative to the config file;
    checked at start. TLS verification (chain and host name) cannot be turned off."""
    # Webhooks: the signing secret's variable (default LINQ_WEBHOOK_SECRET, like Linq's
    # SDKs; when that default is unset, webhooks are simply off for the account).
    webhook_secret_env: str | None = None
    """Variable holding the ``whsec_…`` signing secret, ``LINQ_WEBHOOK_SECRET`` if not given.
    Webhooks are off for the account when that default variable is unset; a variable named
    here must be set."""
    webhook_unmatched_expiry: Duration = timedelta(days=1)
    """A webhook event for a number no poll has shown is retried after each poll, then
    given up after this long (``linq_reputation_webhook_events_expired_total``); Linq
    retries a delivery for about 25 minutes and a new line shows at the next poll."""
    webhook_secret_file: Path | None = None
    """File holding the signing secret instead (e.g. ``/run/secrets/linq-webhook``),
    relative to the config file; must be readable. Not with ``webhook_secret_env``."""
    accept_legacy_signatures: bool = False
    """Also accept the deprecated ``X-Webhook-Signature`` scheme (for proxies that strip
    ``webhook-*`` headers)."""
    # Reputation audits: started when a line degrades to one of these statuses; the alert
    # waits at most audit_wait for the diagnosis before it goes out without it.
    audit_on: list[str] = ["CRITICAL"]
    """Statuses whose degradation starts a reputation audit; ``[]`` turns audits off."""
    audit_wait: Duration = timedelta(seconds=20)
    """How long an alert may wait for its audit before it goes out without it."""
    # The audit budget (docs/webhooks-and-audits.md says why these defaults): a mass event
    # must not start thousands of audits, and a handful of diagnoses of the worst lines is
    # what an on-call reads. Lines left out get "no audit: budget" in their alert at once.
    audit_max_running: int = Field(default=4, ge=1, le=100)
    """Automatic audits of the account running at once; a line that degrades while that many
    run gets no audit, and its alert says "no audit: budget"."""
    audit_max_per_hour: int = Field(default=60, ge=1, le=10000)
    """Automatic audits the account may start per hour (the worst lines first)."""
    audit_cooldown: Duration = timedelta(hours=6)
    """A line audited less than this long ago is not audited again (its alert points at the
    latest report); ``0s`` audits at every degradation, subject to Linq's own cooldown."""

    _resolved: SecretStr | None = PrivateAttr(default=None)
    _ca_path: Path | None = PrivateAttr(default=None)
    _webhook_secret: SecretStr | None = PrivateAttr(default=None)
    _secrets_skipped: bool = PrivateAttr(default=False)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("poll_interval")
    @classmethod
    def _not_too_fast(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    # audit_wait may be 0s: alerts never wait, the diagnosis follows as its own message.
    _timeout_not_zero = field_validator("timeout", "webhook_unmatched_expiry")(
        _longer_than_zero)

    @model_validator(mode="after")
    def _one_token_source(self) -> AccountConfig:
        given = [k for k in ("token_env", "token_file", "token") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of {', '.join(given)}")
        if self.webhook_secret_env is not None and self.webhook_secret_file is not None:
            raise ValueError("set only one of webhook_secret_env, webhook_secret_file")
        return self

    @property
    def ca_bundle_path(self) -> Path | None:
        """``ca_bundle`` resolved against the config file's folder and checked readable."""
        return self._ca_path

    @property
    def api_token(self) -> SecretStr:
        """The partner token. Raises RuntimeError on a config loaded with secrets=False."""
        if self._secrets_skipped:
            raise _not_read(f"the API token of account {self.name!r}")
        if self._resolved is None:
            raise RuntimeError("config secrets were not resolved; use load_config()")
        return self._resolved

    @property
    def webhook_secret(self) -> SecretStr | None:
        """The Standard Webhooks signing secret, or None when webhooks are off. Raises
        RuntimeError on a config loaded with secrets=False."""
        if self._secrets_skipped:
            raise _not_read(f"the webhook secret of account {self.name!r}")
        return self._webhook_secret


def _database_dialect(url: str) -> str:
    """``url`` if it names a database we speak, ``postgresql://`` read as psycopg 3's."""
    if not url.startswith(("sqlite:", "postgresql")):
        raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _optional_duration(value: object) -> object:
    return None if value == "off" else value


class DatabaseConfig(_Section):
    url: str = DEFAULT_DATABASE_URL
    """``sqlite:///FILE`` (a relative FILE is beside the config file; ``sqlite:////abs/path``)
    or ``postgresql+psycopg://user@host/db`` (``postgresql://`` is read as
    ``postgresql+psycopg://``)."""
    url_env: str | None = None
    """Read the database URL (with its password) from this variable instead, which must be
    set."""
    url_file: Path | None = None
    """Or read it from this file (relative to the config file), which must be readable. Not
    with ``url_env``."""
    # History older than this is condensed into summaries by a daily job ("off": keep all).
    retention: Annotated[Duration | None, BeforeValidator(_optional_duration)] = timedelta(
        days=400)
    """History older than this is condensed daily into summaries; ``"off"`` keeps
    everything."""

    @model_validator(mode="after")
    def _one_url_source(self) -> DatabaseConfig:
        if self.url_env is not None and self.url_file is not None:
            raise ValueError("set only one of url_env, url_file")
        return self

    @field_validator("retention")
    @classmethod
    def _keeps_something(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError('must be longer than 0s (or "off" to keep everything)')
        return value

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        return _database_dialect(value)


class ServerConfig(_Section):
    listen: str = "127.0.0.1:9464"
    """``HOST:PORT`` serving ``/metrics``, ``/healthz``, ``/readyz``, ``/webhooks/linq``,
    ``/api/v1`` and the status page (``/``); loopback by default: expose it deliberately."""
    # Bearer token for /api/v1 and the status page (and /metrics with protect_metrics);
    # unset: no auth.
    api_token_env: str | None = None
    """Variable holding a bearer token required by ``/api/v1`` and, through a login form,
    the status page; the variable must be set. Without this key there is no auth: keep the
    server on loopback or behind a proxy."""
    api_token_file: Path | None = None
    """File holding that token instead, relative to the config file; must be readable. Not
    with ``api_token_env``."""
    protect_metrics: bool = False
    """Require the same bearer token for ``/metrics`` too; needs ``api_token_env`` or
    ``api_token_file``."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    """Larger request bodies are refused with 413, on every endpoint."""
    request_timeout: Duration = timedelta(seconds=10)
    """A request not answered by then gets 503."""
    max_connections: int = Field(default=1000, ge=8)
    """Open HTTP connections at most; past it, the connection idle longest is closed
    (lowered at start to fit the open-file limit, with a warning)."""
    header_timeout: Duration = timedelta(seconds=10)
    """A connection must send a complete request head within this of opening (or of its
    previous response), or it is closed: slow-header clients cannot pile up."""
    webhook_url: str | None = None
    """The ``https://`` URL Linq delivers this monitor's webhooks to (what ``webhook
    register --url`` was given). At start and daily, each account with webhooks on is
    checked to have an active ``phone_number.status_updated`` subscription to it (to any
    URL when not set); when not, the channels hear it as the monitor's own trouble."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names (``name`` for any port, or ``name:port``) that ``/metrics``, ``/api/v1``
    and the status page answer to; any other ``Host`` header gets 421, against DNS
    rebinding. Empty (the default): any host. ``/healthz``, ``/readyz`` and
    ``/webhooks/linq`` are not checked (probes and Linq reach them by address or through a
    proxy)."""

    _api_token: SecretStr | None = PrivateAttr(default=None)
    _secrets_skipped: bool = PrivateAttr(default=False)

    _timeout_not_zero = field_validator("request_timeout", "header_timeout")(_longer_than_zero)

    @field_validator("protect_metrics")
    @classmethod
    def _protected_by_a_token(cls, value: bool, info: ValidationInfo) -> bool:
        # A bad api_token_env is missing from info.data: reported there, not here too.
        if value and info.data.get("api_token_env", "bad") is None \
                and info.data.get("api_token_file", "bad") is None:
            raise ValueError("needs server.api_token_env or server.api_token_file")
        return value

    @model_validator(mode="after")
    def _one_api_token_source(self) -> ServerConfig:
        if self.api_token_env is not None and self.api_token_file is not None:
            raise ValueError("set only one of api_token_env, api_token_file")
        return self

    @property
    def api_token(self) -> SecretStr | None:
        """The bearer token of ``/api/v1``, None without auth. Raises RuntimeError on a
        config loaded with secrets=False."""
        if self._secrets_skipped:
            raise _not_read("the server's API token")
        return self._api_token

    @field_validator("webhook_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^/\s]+", value):
            raise ValueError("must be an https:// URL (Linq delivers to https only)")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host or any(c in host for c in "/@ \t") or host != host.strip():
                raise ValueError(f"{host!r} is not a host name (or host:port): no scheme, "
                                 "path or spaces, e.g. \"monitor.internal\"")
        return [host.lower() for host in value]

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class MetricsConfig(_Section):
    # "full": state set + severity + since per line (5 series a line); "severity": the
    # severity gauge only (1 a line), for fleets of tens of thousands; "off": none.
    per_line: Literal["full", "severity", "off"] = "full"
    """Per-line series: ``"full"`` (state set, severity, since: 5 series a line),
    ``"severity"`` (the severity gauge only: 1 a line, for very large fleets), ``"off"``."""


OptionalDuration = Annotated[Duration | None, BeforeValidator(_optional_duration)]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:[0-5]\d)?$")
class HaConfig(_Section):
    # This process's name among replicas sharing a PostgreSQL database (the lease holder
    # in logs, metrics and the leases table); default "<hostname>:<pid>".
    replica: str | None = Field(default=None, min_length=1, max_length=200)
    """This process's name among replicas sharing a PostgreSQL database (logs,
    ``linq_reputation_leader``, the ``leases`` table); unset: ``<hostname>:<pid>``."""
    # How long an account stays with a replica that stopped renewing its lease (crashed,
    # paused, cut off) before another replica takes it over; renewed every third of it.
    lease: Duration = timedelta(seconds=30)
    """How long an account stays with a replica that stopped renewing (crashed, paused, cut
    off) before another takes it; at least ``2s``."""

    @field_validator("lease")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=2):
            raise ValueError("must be at least 2s")
        return value


class ChannelConfig(_Section):
    name: str = Field(min_length=1)
    """Unique; the ``channel`` label of the notification metrics."""
    url: SecretStr | None = None  # Apprise URLs often embed credentials: kept secret
    """Any Apprise URL; validated at start, never printed. Set exactly one of ``url``,
    ``url_env``."""
    url_env: str | None = None
    """Variable holding the Apprise URL, instead of ``url``."""
    url_file: Path | None = None
    """File holding the Apprise URL (relative to the config file), instead of ``url``."""
    min_status: Literal["WATCH", "AT_RISK", "CRITICAL"] = "AT_RISK"
    """``AT_RISK``: every degradation; ``CRITICAL``: only lines that reach CRITICAL;
    ``WATCH``: also the early warning from chat health (``[chats.watch]``)."""
    # Routing: only these accounts / only lines carrying all these labels ([[lines]]).
    accounts: list[str] = []
    """Only lines of these accounts (empty: all)."""
    labels: dict[str, str] = {}
    """Only lines carrying all these labels (from ``[[lines]]``), e.g.
    ``{ team = "sales" }``."""
    # Timing policy (monitor/core/policy.py, monitor/alerts/schedule.py).
    repeat_interval: OptionalDuration = None
    """Remind at this interval while a line stays at or above ``min_status`` (unset or
    ``"off"``: no reminders)."""
    escalate_after: OptionalDuration = None
    """Hear of a line only once it has been at or above ``min_status`` this long (unset or
    ``"off"``: at once)."""
    group_wait: Duration = timedelta(seconds=5)
    """Changes due within this window go out as one message."""
    group_limit: int = Field(default=20, ge=1, le=500)
    """Entries listed in a grouped message before "+N more"."""
    critical_skips_group_wait: bool = False
    """A degradation to CRITICAL goes out at once (taking what else is due)."""
    quiet_hours: str | None = None  # "22:00-07:00" in ``timezone``
    """E.g. ``"22:00-07:00"`` in ``timezone``: non-CRITICAL messages are deferred to the
    end, then sent as one summary."""
    quiet_hours_critical: Literal["send", "defer"] = "send"
    """``"defer"`` holds CRITICAL messages during quiet hours too."""

    @field_validator("quiet_hours")
    @classmethod
    def _clock_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        start, sep, end = value.replace(" ", "").partition("-")
        if not sep or not _CLOCK.match(start) or not _CLOCK.match(end) or start == end:
            raise ValueError("must be 'HH:MM-HH:MM' with two different times, e.g. '22:00-07:00'")
        return f"{start}-{end}"

    @field_validator("repeat_interval", "escalate_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("must be at least 1s (or \"off\")")
        return value
    # Message text: Jinja2 templates over the default text (monitor/alerts/templates.py),
    # compiled here so a syntax error stops the start, naming the key.
    title_template: str | None = None
    """Jinja2 template of this channel's message titles; a syntax error is refused at start
    naming the key."""
    body_template: str | None = None
    """Jinja2 template of this channel's message bodies; a syntax error is refused at start
    naming the key."""
    body_format: Literal["text", "markdown", "html"] = "text"
    """``"markdown"`` or ``"html"`` for a ``body_template`` (Apprise's body formats; an HTML
    template escapes what it interpolates)."""
    # A daily digest at this local time ("HH:MM") in `timezone` (quiet hours use it too).
    digest: str | None = None
    """``"HH:MM"`` (or ``"HH:MM:SS"``, as ``quiet_hours`` takes): a daily digest at this
    time of day in ``timezone``."""
    timezone: str = "UTC"  # IANA zone of quiet_hours and digest
    """IANA name (``"Europe/Berlin"``) for ``quiet_hours``, ``digest`` and the ``time``
    template filter."""

    _resolved: SecretStr | None = PrivateAttr(default=None)
    _secrets_skipped: bool = PrivateAttr(default=False)

    @field_validator("title_template", "body_template")
    @classmethod
    def _compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        checks = (info.context or {}).get("checks")
        if value is not None and checks is not None:
            checks.template(value)
        return value

    @field_validator("body_format")
    @classmethod
    def _format_needs_template(cls, value: str, info: ValidationInfo) -> str:
        # A template that does not compile is missing from info.data: reported there only.
        if value != "text" and info.data.get("body_template", "bad") is None:
            raise ValueError(f"'{value}' needs a body_template (the default text is plain)")
        return value

    @field_validator("digest")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not _CLOCK.match(value):
            raise ValueError(f"'{value}' is not a time of day (use \"HH:MM\", e.g. \"09:00\")")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. \"Europe/Berlin\")"
                             ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def digest_time(self) -> time | None:
        """When the daily digest is due, in ``zone``; None if the channel has none."""
        if self.digest is None:
            return None
        hour, minute, second = (int(part) for part in f"{self.digest}:0".split(":")[:3])
        return time(hour, minute, second)

    @model_validator(mode="after")
    def _one_url_source(self) -> ChannelConfig:
        if [self.url, self.url_env, self.url_file].count(None) != 2:
            raise ValueError("set exactly one of url, url_env, url_file")
        return self

    @property
    def apprise_url(self) -> SecretStr:
        """The Apprise URL. Raises RuntimeError on a config loaded with secrets=False."""
        if self._secrets_skipped:
            raise _not_read(f"the URL of channel {self.name!r}")
        if self._resolved is None:
            raise RuntimeError("config secrets were not resolved; use load_config()")
        return self._resolved


class AlertsConfig(_Section):
    notify_recovery: bool = True
    """Send recovery notices, to the channels that received the degradation."""
    # Debounce: consecutive successful polls a worse / better status must hold to count.
    confirm_polls: int = Field(default=1, ge=1, le=100)
    """Consecutive successful polls a worse status must hold before it alerts."""
    recover_polls: int = Field(default=1, ge=1, le=100)
    """Consecutive successful polls a better status (improving or recovered) must hold."""
    # Flapping: more than flap_changes changes within flap_window (0: never flapping).
    flap_changes: int = Field(default=0, ge=0, le=1000)
    """More than this many changes within ``flap_window``: the line is flapping (``0``:
    off)."""
    flap_window: Duration = timedelta(hours=1)
    """The window ``flap_changes`` counts changes in."""
    # How often time-based policy is re-checked (escalations, reminders, silences ending,
    # flapping settling, the monitor's own trouble): the precision of those timers.
    policy_interval: Duration = timedelta(seconds=5)
    """How often time-based policy is re-checked (reminders, escalations, silences ending,
    flapping settling)."""
    delivery_timeout: Duration = timedelta(seconds=30)
    """Our own deadline for one send (Apprise has no overall timeout)."""
    retry_initial: Duration = timedelta(seconds=5)
    """First backoff between attempts of a failed send; it doubles up to ``retry_max``."""
    retry_max: Duration = timedelta(minutes=10)
    """Longest backoff between attempts of a failed send."""
    give_up_after: Duration = timedelta(hours=24)
    """A notification still failing this long after it was queued is marked failed,
    counted and shown by ``status``."""
    stale_after: Duration = timedelta(minutes=10)
    """``/readyz`` reports an account with no successful poll for this long, and the
    monitor announces it once to the channels (and once when it clears)."""
    channels: list[ChannelConfig] = []
    """Where alerts go: one ``[[alerts.channels]]`` table per Apprise destination."""

    _not_zero = field_validator("policy_interval", "delivery_timeout", "retry_initial",
                                "retry_max", "give_up_after", "stale_after")(_longer_than_zero)

    @field_validator("flap_window")
    @classmethod
    def _window_when_flapping(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if info.data.get("flap_changes", 0) > 0 and value <= timedelta(0):
            raise ValueError("must be longer than 0s when flap_changes is set")
        return value

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, value: list[ChannelConfig]) -> list[ChannelConfig]:
        _require_unique([c.name for c in value], "channel")
        return value


class LineConfig(_Section):
    """A ``[[lines]]`` entry: a name and labels for the lines it matches (see core/labels.py).

    ``match`` is a phone number, a line id, or a glob (``*``, ``?``, ``[...]``) tried
    against both; ``account`` restricts the entry to one account.
    """

    match: str = Field(min_length=1)
    """A phone number, a line id, or a glob (``*``, ``?``, ``[...]``) tried against both,
    e.g. ``"+1415*"``."""
    name: str | None = Field(default=None, min_length=1)
    """A human name for the matching lines (shown in messages and
    ``linq_reputation_line_info``)."""
    labels: dict[str, str] = {}
    """E.g. ``{ team = "sales", site = "sf" }``; names are letters, digits and ``_`` (not
    starting with a digit), values strings."""
    account: str | None = None
    """Apply the entry only to lines of this (configured) account."""

    @field_validator("match")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if value != value.strip() or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} contains spaces; use a phone number, a line id "
                             "or a glob such as '+1415*'")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not LABEL_NAME.match(k)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a valid label name ({LABEL_NAME_RULE})")
        return value


# --- [chats.watch]: the WATCH early warning's thresholds (monitor/core/chats.py) -------

_W = DEFAULT_THRESHOLDS
_WATCH_PAIRS = (("enter_share", "exit_share"), ("enter_unhealthy", "exit_unhealthy"),
                ("enter_opted_out", "exit_opted_out"))


def _exit_not_above_enter(values: Mapping[str, Any]) -> str | None:
    """What is wrong with a set of thresholds whose exit level is above its enter level
    (the warning could never clear), or None."""
    for enter, leave in _WATCH_PAIRS:
        # enter_opted_out 0 turns that signal off; its exit level then does not apply
        if values.get(leave) is not None and values.get(enter) \
                and values[leave] > values[enter]:
            return (f"{leave} ({values[leave]:g}) must not be above {enter} "
                    f"({values[enter]:g}): WATCH would never clear")
    return None


class ChatWatchOverride(_Section):
    """A ``[[chats.watch.overrides]]`` entry: other thresholds for some lines."""

    accounts: list[str] = []
    """Only lines of these accounts (empty: all)."""
    labels: dict[str, str] = {}
    """Only lines carrying all these labels (from ``[[lines]]``)."""
    min_active: int | None = Field(default=None, ge=1)
    """As in ``[chats.watch]``, for the lines selected."""
    enter_share: float | None = Field(default=None, gt=0, le=1)
    """As in ``[chats.watch]``, for the lines selected."""
    exit_share: float | None = Field(default=None, ge=0, le=1)
    """As in ``[chats.watch]``, for the lines selected."""
    enter_unhealthy: int | None = Field(default=None, ge=1)
    """As in ``[chats.watch]``, for the lines selected."""
    exit_unhealthy: int | None = Field(default=None, ge=0)
    """As in ``[chats.watch]``, for the lines selected."""
    enter_opted_out: int | None = Field(default=None, ge=0)
    """As in ``[chats.watch]``, for the lines selected."""
    exit_opted_out: int | None = Field(default=None, ge=0)
    """As in ``[chats.watch]``, for the lines selected."""
    rise_share: float | None = Field(default=None, ge=0, le=1)
    """As in ``[chats.watch]``, for the lines selected."""
    rise_within: Duration | None = None
    """As in ``[chats.watch]``, for the lines selected."""
    baseline_share: float | None = Field(default=None, ge=0, lt=1)
    """As in ``[chats.watch]``, for the lines selected."""
    noise_chance: float | None = Field(default=None, gt=0, lt=1)
    """As in ``[chats.watch]``, for the lines selected."""

    _rise_not_zero = field_validator("rise_within")(
        lambda value: None if value is None else _longer_than_zero(value))

    def thresholds(self) -> dict[str, Any]:
        """The threshold keys this entry sets."""
        return {k: v for k, v in self.model_dump(exclude={"accounts", "labels"}).items()
                if v is not None}


class ChatWatchConfig(_Section):
    """When a HEALTHY line becomes WATCH from its chats' health; every default is argued in
    docs/early-warning.md. Shares count AT_RISK + CRITICAL chats among those active in the
    window; a line leaves WATCH once every signal is below its ``exit_*`` level."""

    min_active: int = Field(default=_W.min_active, ge=1)
    """Chats active in the window a line needs before its share or a rise counts."""
    enter_share: float = Field(default=_W.enter_share, gt=0, le=1)
    """Share of unhealthy chats (0-1) that puts a line on WATCH."""
    exit_share: float = Field(default=_W.exit_share, ge=0, le=1)
    """The share below which that signal clears."""
    enter_unhealthy: int = Field(default=_W.enter_unhealthy, ge=1)
    """Unhealthy chats that put a line on WATCH, whatever the share (on a busy line: also
    more than ordinary traffic shows, see ``baseline_share``)."""
    exit_unhealthy: int = Field(default=_W.exit_unhealthy, ge=0)
    """The count below which that signal clears."""
    enter_opted_out: int = Field(default=_W.enter_opted_out, ge=0)
    """Opted-out chats in the window that put a line on WATCH (``0``: opt-outs are shown,
    never warn)."""
    exit_opted_out: int = Field(default=_W.exit_opted_out, ge=0)
    """The count below which that signal clears."""
    rise_share: float = Field(default=_W.rise_share, ge=0, le=1)
    """A rise of the unhealthy share by this much within ``rise_within`` puts a line on
    WATCH (``0``: off)."""
    rise_within: Duration = _W.rise_within
    """The window of ``rise_share``."""
    baseline_share: float = Field(default=_W.baseline_share, ge=0, lt=1)
    """The share of unhealthy chats (0-1) a line with ordinary traffic has: the share, the
    count and the rise put a line on WATCH only with more unhealthy chats than that traffic
    shows (see ``noise_chance``; ``0``: no such check)."""
    noise_chance: float = Field(default=_W.noise_chance, gt=0, lt=1)
    """How unlikely (0-1) the line's unhealthy count must be under ``baseline_share``, its
    active chats each unhealthy by chance, for any unhealthy signal to count (1e-5: 7
    of 20 chats, 9 of 40)."""
    overrides: list[ChatWatchOverride] = []
    """Other thresholds by account and labels; entries apply in file order."""

    _rise_not_zero = field_validator("rise_within")(_longer_than_zero)

    @model_validator(mode="after")
    def _clears(self) -> ChatWatchConfig:
        problem = _exit_not_above_enter(self.model_dump())
        if problem:
            raise ValueError(problem)
        base = self.model_dump(exclude={"overrides"})
        for i, override in enumerate(self.overrides):
            problem = _exit_not_above_enter({**base, **override.thresholds()})
            if problem:
                raise ValueError(f"overrides[{i}]: {problem}")
        return self

    def rules(self) -> WatchRules:
        """The core's view: base thresholds and the overrides, in order."""
        base = WatchThresholds(**self.model_dump(exclude={"overrides"}))
        return WatchRules(base, tuple(
            WatchOverride(o.thresholds(), frozenset(o.accounts), dict(o.labels))
            for o in self.overrides))


class ChatsConfig(_Section):
    """Chat health: the sweep of every chat (and chat webhook events), and the WATCH
    early warning derived from it."""

    # Off by default: chat health is a BETA field of Linq's API, and the sweep spends API
    # requests on an endpoint whose rate limit Linq does not document.
    enabled: bool = False
    """Sweep every chat of each account (``GET /v3/chats``) for chat health, the early
    warning's source; message and chat webhooks are applied whether or not this is on."""
    # 20 a minute (one request every 3 s, 2,000 chats a minute) sits far below any limit a
    # partner API plausibly sets, beside the reputation poll's one request a minute, and
    # still sweeps 200,000 chats in under two hours.
    requests_per_minute: int = Field(default=20, ge=1, le=600)
    """Most ``GET /v3/chats`` requests per account and minute (each lists 100 chats); a
    429's ``Retry-After`` pauses the sweep on top of this."""
    interval: Duration = timedelta(hours=1)
    """A full sweep starts at most this often; a longer sweep is followed at once by the
    next."""
    window: Duration = timedelta(days=7)
    """A line's summary counts its chats active (``updated_at``) within this long."""

    @field_validator("interval", "window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return _longer_than_zero(value)

    watch: ChatWatchConfig = ChatWatchConfig()
    """When chat health puts a line on WATCH."""


class Config(_Section):
    accounts: list[AccountConfig] = Field(min_length=1)
    """The Linq partner accounts to poll: one ``[[accounts]]`` table each, at least one."""
    lines: list[LineConfig] = []
    """Names and labels for lines; entries apply in file order."""
    database: DatabaseConfig = DatabaseConfig()
    """Where line states, history and the outbox are stored."""
    server: ServerConfig = ServerConfig()
    """The HTTP server of the daemon."""
    metrics: MetricsConfig = MetricsConfig()
    """What ``/metrics`` exports per line."""
    alerts: AlertsConfig = AlertsConfig()
    """Alert delivery and policy, and the channels alerts go to."""
    ha: HaConfig = HaConfig()
    """Several replicas sharing one PostgreSQL database."""
    chats: ChatsConfig = ChatsConfig()
    """Chat health: the sweep, chat webhook events and the WATCH early warning."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level logged; ``--log-level`` overrides."""
    log_format: Literal["text", "json"] = "text"
    """``"json"`` for log pipelines (``--log-format`` overrides)."""

    _warnings: list[str] = PrivateAttr(default_factory=list)
    _database_url: str | None = PrivateAttr(default=None)

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[AccountConfig]) -> list[AccountConfig]:
        _require_unique([a.name for a in value], "account")
        return value

    @property
    def warnings(self) -> list[str]:
        """Things that are allowed but unwise, to be logged once at start."""
        return list(self._warnings)

    def database_url(self) -> str:
        """The URL to open: ``url``, or the value of ``url_env``; a relative SQLite path
        taken from the config file's folder. Resolved when the config is loaded, with or
        without secrets."""
        if self._database_url is None:
            raise RuntimeError("the database URL was not resolved; use load_config()")
        return self._database_url


class ConfigChecks(Protocol):
    """What the config cannot judge with the core alone: whether Apprise understands a
    channel URL and whether a Jinja2 template compiles. The alerts layer answers
    (``monitor.alerts.checks.ALERT_CHECKS``); the command line passes it, so every command
    refuses such a config naming the key. Without it both are taken as written."""

    def channel_url(self, url: str) -> bool: ...

    def template(self, source: str) -> None:
        """Raise ValueError saying what is wrong with ``source``."""


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                checks: ConfigChecks | None = None, secrets: bool = True) -> Config:
    """Read, validate and resolve a TOML config; the relative paths in it (``token_file``,
    ``ca_bundle``, a SQLite file) are taken from the file's folder. Raises ConfigError
    listing every problem found (see ``parse_config``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    config = parse_config(raw, environ=environ, base_dir=path.parent, checks=checks,
                          secrets=secrets)
    if _readable_by_others(path):
        config._warnings += [
            f"{path} is readable by other users and holds {what} ({key}); {instead}, "
            "or chmod 600 the file"
            for key, what, instead in _inline_secrets(config)]
    return config


# Query parameters of a database URL that carry a credential (as store.engine.safe_url
# masks them): libpq's password and sslpassword, a driver's token.


def _inline_secrets(config: Config) -> list[tuple[str, str, str]]:
    """The secrets written in the config file itself: key, what it is, where to keep it."""
    found = [(f"accounts[{i}].token", "an inline API token", "use token_env or token_file")
             for i, account in enumerate(config.accounts) if account.token is not None]
    found += [(f"alerts.channels[{i}].url", "an inline channel URL", "use url_env or url_file")
              for i, channel in enumerate(config.alerts.channels)
              if channel.url is not None and _may_hold_credentials(channel.url)]
    if _has_password(config.database.url):
        found.append(("[database] url", "a database password",
                      "use [database] url_env or url_file"))
    return found


def _may_hold_credentials(url: SecretStr) -> bool:
    """Whether an Apprise URL has anything after its scheme: Apprise puts tokens in the
    host (``tgram://BOT_TOKEN/...``), the userinfo, the path or the query, so any of them
    may be one; only a bare ``console://`` or ``windows://`` holds nothing."""
    _, _, rest = url.get_secret_value().partition("://")
    return bool(rest.strip("/"))


def _has_password(url: str) -> bool:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed port or host: the database layer says so when it opens
        return False
    return bool(password) or any(is_credential_name(name)
                                 for name, _ in parse_qsl(parts.query))


def parse_config(
    raw: dict[str, Any], *, environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None, checks: ConfigChecks | None = None, secrets: bool = True,
) -> Config:
    """Validate a config mapping and resolve what it refers to.

    Raises ConfigError listing every problem found, in file order: each key of the wrong
    shape (pydantic's errors), and, in the sections that are well formed, references
    between sections and the secrets and files they name. So one run shows them all.

    ``secrets=False`` neither reads nor requires a secret (API tokens, channel URLs,
    webhook secrets, the server's API token): for commands that only read the database.
    Asking such a config for one raises RuntimeError. The database URL (``url_env``
    included) is resolved either way; relative paths are taken from ``base_dir``.
    """
    env = os.environ if environ is None else environ
    problems = _Problems()
    try:
        config: Config | None = Config.model_validate(raw, context={"checks": checks})
    except ValidationError as exc:
        config = None
        problems.found += [(_key_path(error["loc"]), _reason(error))
                           for error in exc.errors(include_input=False, include_url=False)]
    parts = _Parts.of(config) if config is not None else _Parts.salvage(raw, checks)
    problems.found += _broken_references(parts)
    if config is not None:
        problems.found += _unknown_watch_accounts(config)
    for i, account in parts.accounts:
        _resolve_account(account, f"accounts[{i}]", problems, env=env, base_dir=base_dir,
                         secrets=secrets)
    for i, channel in parts.channels:
        _resolve_channel(channel, f"alerts.channels[{i}]", problems, env=env, checks=checks,
                         secrets=secrets, base_dir=base_dir)
    if parts.server is not None:
        server = parts.server
        if secrets:
            server._api_token = problems.check(
                lambda: _resolve_server_token(server, env, base_dir))
        else:
            server._secrets_skipped = True
    database_url = None
    if parts.database is not None:
        database = parts.database
        database_url = problems.check(lambda: _resolve_database_url(database, env, base_dir))
    if problems.found:
        raise ConfigError.of(_in_file_order(problems.found, raw))
    assert config is not None and database_url is not None  # else a problem was recorded
    config._database_url = database_url
    _warn_of_unheard_channels(config)
    _warn_of_plain_http(config)
    return config


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _Problems:
    """The ``(key, reason)`` problems found so far in one config."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def check(self, step: Callable[[], T]) -> T | None:
        """``step()``, or None once its ConfigError is recorded."""
        try:
            return step()
        except ConfigError as exc:
            self.found += exc.problems
            return None


@dataclass(frozen=True)
class _Parts:
    """The sections whose secrets and references get checked: those of a valid config, or,
    when some key is bad, every section that is well formed on its own, so that a mistake
    in one section does not hide a missing variable in another."""

    accounts: list[tuple[int, AccountConfig]]
    account_names: list[str] | None  # None: some account is malformed, its name unknown
    lines: list[tuple[int, LineConfig]]
    channels: list[tuple[int, ChannelConfig]]
    server: ServerConfig | None
    database: DatabaseConfig | None

    @classmethod
    def of(cls, config: Config) -> _Parts:
        return cls(list(enumerate(config.accounts)), [a.name for a in config.accounts],
                   list(enumerate(config.lines)), list(enumerate(config.alerts.channels)),
                   config.server, config.database)

    @classmethod
    def salvage(cls, raw: Mapping[str, Any], checks: ConfigChecks | None) -> _Parts:
        context = {"checks": checks}
        raw_accounts, alerts = raw.get("accounts"), raw.get("alerts")
        accounts = _well_formed(AccountConfig, raw_accounts, context)
        complete = isinstance(raw_accounts, list) and 0 < len(accounts) == len(raw_accounts)
        return cls(
            accounts, [a.name for _, a in accounts] if complete else None,
            _well_formed(LineConfig, raw.get("lines"), context),
            _well_formed(ChannelConfig,
                         alerts.get("channels") if isinstance(alerts, dict) else None, context),
            _valid_or_none(ServerConfig, raw.get("server", {}), context),
            _valid_or_none(DatabaseConfig, raw.get("database", {}), context))


def _well_formed(model: type[M], items: object, context: dict[str, Any]) -> list[tuple[int, M]]:
    if not isinstance(items, list):
        return []
    valid = ((i, _valid_or_none(model, item, context)) for i, item in enumerate(items))
    return [(i, section) for i, section in valid if section is not None]


def _valid_or_none(model: type[M], value: object, context: dict[str, Any]) -> M | None:
    try:
        return model.model_validate(value, context=context)
    except ValidationError:
        return None  # already reported by the validation of the whole config


def _broken_references(parts: _Parts) -> list[tuple[str, str]]:
    """Lines and channels naming an account that is not configured."""
    names = parts.account_names
    if names is None:
        return []
    found = []
    for i, line in parts.lines:
        if line.account is not None and line.account not in names:
            found.append((f"lines[{i}].account", f"no account named {line.account!r} "
                          f"(configured: {', '.join(names)})"))
    for i, channel in parts.channels:
        unknown = sorted(set(channel.accounts) - set(names))
        if unknown:
            found.append((f"alerts.channels[{i}].accounts",
                          f"unknown account(s): {', '.join(unknown)}"))
    return found


def _unknown_watch_accounts(config: Config) -> list[tuple[str, str]]:
    """``[[chats.watch.overrides]]`` entries naming an account that is not configured."""
    names = {a.name for a in config.accounts}
    return [(f"chats.watch.overrides[{i}].accounts",
             f"unknown account(s): {', '.join(sorted(set(o.accounts) - names))}")
            for i, o in enumerate(config.chats.watch.overrides) if set(o.accounts) - names]


def _in_file_order(problems: list[tuple[str, str]], raw: Mapping[str, Any]) -> list[
        tuple[str, str]]:
    """Sorted by the section's place in the file, then by the entry's index in an array of
    tables; in the order found within one entry."""
    place = {name: i for i, name in enumerate(raw)}

    def position(problem: tuple[str, str]) -> tuple[int, int]:
        key = problem[0]
        index = re.search(r"\[(\d+)\]", key)
        return (place.get(re.split(r"[.\[]", key, maxsplit=1)[0], len(place)),
                int(index.group(1)) if index else -1)

    return sorted(problems, key=position)


def _resolve_account(account: AccountConfig, key: str, problems: _Problems, *,
                     env: Mapping[str, str], base_dir: Path | None, secrets: bool) -> None:
    """The account's CA bundle, and unless told not to its API token and webhook secret,
    read and checked."""
    if account.ca_bundle is not None:
        bundle = account.ca_bundle
        account._ca_path = problems.check(
            lambda: _check_ca_bundle(bundle, f"{key}.ca_bundle", base_dir))
    if not secrets:
        account._secrets_skipped = True
        return
    account._resolved = problems.check(lambda: _resolve_token(account, key, env, base_dir))
    account._webhook_secret = problems.check(
        lambda: _resolve_webhook_secret(account, key, env, base_dir))


def _resolve_channel(channel: ChannelConfig, key: str, problems: _Problems, *,
                     env: Mapping[str, str], checks: ConfigChecks | None, secrets: bool,
                     base_dir: Path | None = None) -> None:
    """The channel's Apprise URL, read and checked, unless told not to."""
    if not secrets:
        channel._secrets_skipped = True
        return
    channel._resolved = problems.check(
        lambda: _resolve_channel_url(channel, key, env, checks, base_dir))


def _warn_of_unheard_channels(config: Config) -> None:
    """A warning for a channel's label selector that no line can match."""
    given = {(k, v) for line in config.lines for k, v in line.labels.items()}
    for i, channel in enumerate(config.alerts.channels):
        missing = [f"{k}={v}" for k, v in sorted(channel.labels.items()) if (k, v) not in given]
        if missing:
            config._warnings.append(
                f"alerts.channels[{i}].labels: no [[lines]] entry gives {', '.join(missing)}, "
                f"so channel {channel.name} hears of no line")


def _warn_of_plain_http(config: Config) -> None:
    """A warning for an account whose partner token would cross the network unencrypted:
    plain ``http://`` to a host other than this one. Loopback stays quiet (the simulator,
    a local proxy that adds TLS)."""
    for i, account in enumerate(config.accounts):
        parts = urlsplit(account.base_url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            config._warnings.append(
                f"accounts[{i}].base_url is plain http:// to {parts.hostname}: the partner "
                "token would travel unencrypted; use https://")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve_server_token(server: ServerConfig, env: Mapping[str, str],
                          base_dir: Path | None = None) -> SecretStr | None:
    """The API token of the gate (and of /metrics when protected), if one is asked for."""
    if server.api_token_file is not None:
        return SecretStr(_read_secret_file(server.api_token_file, "server.api_token_file",
                                           base_dir))
    if server.api_token_env is None:
        return None
    value = env.get(server.api_token_env, "").strip()
    if not value:
        raise ConfigError("server.api_token_env",
                          f"environment variable {server.api_token_env} is not set")
    return SecretStr(value)


def _resolve_database_url(database: DatabaseConfig, env: Mapping[str, str],
                          base_dir: Path | None) -> str:
    """``url`` or the value of ``url_env``, a relative SQLite path taken from ``base_dir``."""
    url = database.url
    if database.url_file is not None:
        value = _read_secret_file(database.url_file, "database.url_file", base_dir)
        try:
            url = _database_dialect(value)
        except ValueError:
            raise ConfigError("database.url_file", f"{database.url_file} does not hold a "
                              "sqlite:/// or postgresql+psycopg:// URL") from None
    if database.url_env is not None:
        name = database.url_env
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError("database.url_env", f"environment variable {name} is not set")
        try:
            url = _database_dialect(value)
        except ValueError:
            # Never echo the value: it usually carries the password.
            raise ConfigError("database.url_env", f"{name} does not hold a sqlite:/// or "
                              "postgresql+psycopg:// URL") from None
    return _sqlite_beside(url, base_dir)


def _sqlite_beside(url: str, base_dir: Path | None) -> str:
    """A relative SQLite path (``sqlite:///monitor.db``) taken from ``base_dir``, like
    ``token_file``, so every command finds the same file whatever the working directory.
    An absolute path (``sqlite:////var/lib/x.db``), ``:memory:`` and other databases are
    unchanged."""
    scheme, sep, rest = url.partition(":///")
    if base_dir is None or not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path.startswith(("/", "file:")) or path == ":memory:":
        return url
    return f"{scheme}:///{os.path.abspath(base_dir / path)}{query_sep}{query}"


def _resolve_token(
    account: AccountConfig, key: str, env: Mapping[str, str], base_dir: Path | None
) -> SecretStr:
    if account.token is not None:
        return account.token
    if account.token_file is not None:
        return SecretStr(_read_secret_file(account.token_file, f"{key}.token_file", base_dir))
    name = account.token_env or DEFAULT_TOKEN_ENV
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{key}.token_env", f"environment variable {name} is not set")
    return SecretStr(value)


def _read_secret_file(path: Path, key: str, base_dir: Path | None) -> str:
    """The stripped text of a ``*_file`` secret (relative to ``base_dir``). Raises
    ConfigError naming ``key`` and the file, never its content, when it is missing,
    unreadable, not UTF-8 text or empty."""
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(key, f"{path} is empty")
    return value


def _check_ca_bundle(path: Path, key: str, base_dir: Path | None) -> Path:
    """The bundle's path, once it is known to hold at least one usable CA certificate."""
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    except ssl.SSLError:
        raise ConfigError(key, f"{path} holds no PEM certificate") from None
    return path
def _resolve_webhook_secret(
    account: AccountConfig, key: str, env: Mapping[str, str], base_dir: Path | None = None
) -> SecretStr | None:
    if account.webhook_secret_file is not None:
        field = f"{key}.webhook_secret_file"
        value = _read_secret_file(account.webhook_secret_file, field, base_dir)
        if not is_valid_secret(value):
            raise ConfigError(field, f"{account.webhook_secret_file} does not hold a signing "
                              "secret (expected whsec_<base64>)")
        return SecretStr(value)
    name = account.webhook_secret_env or DEFAULT_WEBHOOK_SECRET_ENV
    value = env.get(name, "").strip()
    if not value:
        if account.webhook_secret_env is None:
            return None  # the default variable is unset: webhooks are off for this account
        raise ConfigError(f"{key}.webhook_secret_env", f"environment variable {name} is not set")
    if not is_valid_secret(value):
        # Never echo the value: it is the signing key.
        raise ConfigError(f"{key}.webhook_secret_env",
                          f"{name} is not a signing secret (expected whsec_<base64>)")
    return SecretStr(value)


def _resolve_channel_url(channel: ChannelConfig, key: str, env: Mapping[str, str],
                         checks: ConfigChecks | None, base_dir: Path | None = None
                         ) -> SecretStr:
    if channel.url_file is not None:
        url = _read_secret_file(channel.url_file, f"{key}.url_file", base_dir)
        field = "url_file"
    elif channel.url_env is not None:
        value = env.get(channel.url_env, "").strip()
        if not value:
            raise ConfigError(f"{key}.url_env",
                              f"environment variable {channel.url_env} is not set")
        url, field = value, "url_env"
    else:
        assert channel.url is not None
        url, field = channel.url.get_secret_value(), "url"
    if checks is not None and not checks.channel_url(url):
        # Never echo the URL: it usually carries a webhook token or a password.
        raise ConfigError(f"{key}.{field}", "is not a URL Apprise understands")
    return SecretStr(url)


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "function_")):
            out += f".{part}" if out else part
    return out


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
