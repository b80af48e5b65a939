"""The TOML configuration: pydantic models, one clear error per bad key, secrets resolved here.

``load_config(path)`` returns a ``Config`` whose secrets (API tokens, channel URLs that embed
credentials) are already read from the environment or files and wrapped in ``SecretStr``,
so nothing downstream can print them by accident. Any problem raises ``ConfigError`` naming
the key path, e.g. ``accounts[0].poll_interval: '5 minutes' is not a duration``.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
import tomllib
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
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

from monitor.core.labels import LABEL_NAME, LABEL_NAME_RULE
from monitor.core.secret import is_valid_secret
from monitor.errors import ConfigError

DEFAULT_BASE_URL = "https://api.linqapp.com/api/partner"
DEFAULT_TOKEN_ENV = "LINQ_API_V3_API_KEY"
DEFAULT_DATABASE_URL = "sqlite:///reputation-monitor.db"
DEFAULT_WEBHOOK_SECRET_ENV = "LINQ_WEBHOOK_SECRET"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """'30s', '5m', '1h30m', '7d', or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '30s', '5m' or '1h'")
    text = value.strip().replace(" ", "")
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"'{value}' is not a duration (use e.g. '30s', '5m', '1h30m', '7d')")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


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
    accept_legacy_signatures: bool = False
    """Also accept the deprecated ``X-Webhook-Signature`` scheme (for proxies that strip
    ``webhook-*`` headers)."""
    # Reputation audits: started when a line degrades to one of these statuses; the alert
    # waits at most audit_wait for the diagnosis before it goes out without it.
    audit_on: list[str] = ["CRITICAL"]
    """Statuses whose degradation starts a reputation audit; ``[]`` turns audits off."""
    audit_wait: Duration = timedelta(seconds=20)
    """How long an alert may wait for its audit before it goes out without it."""

    _resolved: SecretStr | None = PrivateAttr(default=None)
    _ca_path: Path | None = PrivateAttr(default=None)
    _webhook_secret: SecretStr | None = PrivateAttr(default=None)

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

    @model_validator(mode="after")
    def _one_token_source(self) -> AccountConfig:
        given = [k for k in ("token_env", "token_file", "token") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of {', '.join(given)}")
        return self

    @property
    def ca_bundle_path(self) -> Path | None:
        """``ca_bundle`` resolved against the config file's folder and checked readable."""
        return self._ca_path

    @property
    def api_token(self) -> SecretStr:
        if self._resolved is None:
            raise RuntimeError("config secrets were not resolved; use load_config()")
        return self._resolved

    @property
    def webhook_secret(self) -> SecretStr | None:
        """The Standard Webhooks signing secret, or None when webhooks are off."""
        return self._webhook_secret


def _optional_duration(value: object) -> object:
    return None if value == "off" else value


class DatabaseConfig(_Section):
    url: str = DEFAULT_DATABASE_URL
    """``sqlite:///FILE`` or ``postgresql+psycopg://user@host/db`` (``postgresql://`` is read
    as ``postgresql+psycopg://``)."""
    url_env: str | None = None
    """Read the database URL (with its password) from this variable instead, which must be
    set."""
    # History older than this is condensed into summaries by a daily job ("off": keep all).
    retention: Annotated[Duration | None, BeforeValidator(_optional_duration)] = timedelta(
        days=400)
    """History older than this is condensed daily into summaries; ``"off"`` keeps
    everything."""

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value


class ServerConfig(_Section):
    listen: str = "127.0.0.1:9464"
    """``HOST:PORT`` serving ``/metrics``, ``/healthz``, ``/readyz``, ``/webhooks/linq`` and
    ``/api/v1``; loopback by default: expose it deliberately."""
    # Bearer token for /api/v1 (and /metrics with protect_metrics); unset: no auth.
    api_token_env: str | None = None
    """Variable holding a bearer token required by ``/api/v1``; the variable must be set.
    Without this key there is no auth: keep the server on loopback or behind a proxy."""
    protect_metrics: bool = False
    """Require the same bearer token for ``/metrics`` too; needs ``api_token_env``."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    """Larger request bodies are refused with 413, on every endpoint."""
    request_timeout: Duration = timedelta(seconds=10)
    """A request not answered by then gets 503."""

    _api_token: SecretStr | None = PrivateAttr(default=None)

    @property
    def api_token(self) -> SecretStr | None:
        return self._api_token

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
    min_status: Literal["AT_RISK", "CRITICAL"] = "AT_RISK"
    """``AT_RISK``: every degradation; ``CRITICAL``: only lines that reach CRITICAL."""
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
    """``"HH:MM"``: a daily digest at this time of day in ``timezone``."""
    timezone: str = "UTC"  # IANA zone of quiet_hours and digest
    """IANA name (``"Europe/Berlin"``) for ``quiet_hours``, ``digest`` and the ``time``
    template filter."""

    _resolved: SecretStr | None = PrivateAttr(default=None)

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
        if value != "text" and info.data.get("body_template") is None:
            raise ValueError(f"'{value}' needs a body_template (the default text is plain)")
        return value

    @field_validator("digest")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
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
        hour, minute = self.digest.split(":")
        return time(int(hour), int(minute))

    @model_validator(mode="after")
    def _one_url_source(self) -> ChannelConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of url, url_env")
        return self

    @property
    def apprise_url(self) -> SecretStr:
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level logged; ``--log-level`` overrides."""
    log_format: Literal["text", "json"] = "text"
    """``"json"`` for log pipelines (``--log-format`` overrides)."""

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[AccountConfig]) -> list[AccountConfig]:
        _require_unique([a.name for a in value], "account")
        return value

    @model_validator(mode="after")
    def _channel_accounts_exist(self) -> Config:
        known = {a.name for a in self.accounts}
        for i, channel in enumerate(self.alerts.channels):
            unknown = sorted(set(channel.accounts) - known)
            if unknown:
                raise ConfigError(f"alerts.channels[{i}].accounts",
                                  f"unknown account(s): {', '.join(unknown)}")
        return self

    @property
    def warnings(self) -> list[str]:
        """Things that are allowed but unwise, to be logged once at start."""
        return list(self._warnings)

    def database_url(self) -> str:
        return os.environ[self.database.url_env] if self.database.url_env else self.database.url


class ConfigChecks(Protocol):
    """What the config cannot judge with the core alone: whether Apprise understands a
    channel URL and whether a Jinja2 template compiles. The alerts layer answers
    (``monitor.alerts.checks.ALERT_CHECKS``); the command line passes it, so every command
    refuses such a config naming the key. Without it both are taken as written."""

    def channel_url(self, url: str) -> bool: ...

    def template(self, source: str) -> None:
        """Raise ValueError saying what is wrong with ``source``."""


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                checks: ConfigChecks | None = None) -> Config:
    """Read, validate and resolve a TOML config. Raises ConfigError naming the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    config = parse_config(raw, environ=environ, base_dir=path.parent, checks=checks)
    if any(a.token is not None for a in config.accounts) and _readable_by_others(path):
        config._warnings.append(
            f"{path} holds an inline API token and is readable by other users; "
            "use token_env or token_file, or chmod 600 the file"
        )
    return config


def parse_config(
    raw: dict[str, Any], *, environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None, checks: ConfigChecks | None = None,
) -> Config:
    """Validate a config mapping and resolve its secrets. Raises ConfigError naming the key
    of the first problem: the file's shape first (pydantic), then references between
    sections, then secrets and files, section by section in file order."""
    env = os.environ if environ is None else environ
    try:
        config = Config.model_validate(raw, context={"checks": checks})
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ConfigError(_key_path(first["loc"]), _reason(first)) from None
    _check_line_accounts(config)
    _resolve_accounts(config, env, base_dir)
    _resolve_channels(config, env, checks)
    _resolve_server(config, env)
    if config.database.url_env and config.database.url_env not in env:
        raise ConfigError("database.url_env",
                          f"environment variable {config.database.url_env} is not set")
    return config


def _check_line_accounts(config: Config) -> None:
    """Every ``[[lines]]`` entry that names an account names a configured one."""
    accounts = [a.name for a in config.accounts]
    for i, line in enumerate(config.lines):
        if line.account is not None and line.account not in accounts:
            raise ConfigError(f"lines[{i}].account", f"no account named {line.account!r} "
                              f"(configured: {', '.join(accounts)})")


def _resolve_accounts(config: Config, env: Mapping[str, str], base_dir: Path | None) -> None:
    """Each account's API token, CA bundle and webhook secret, read and checked."""
    for i, account in enumerate(config.accounts):
        account._resolved = _resolve_token(account, f"accounts[{i}]", env, base_dir)
        if account.ca_bundle is not None:
            account._ca_path = _check_ca_bundle(account.ca_bundle, f"accounts[{i}].ca_bundle",
                                                base_dir)
        account._webhook_secret = _resolve_webhook_secret(account, f"accounts[{i}]", env)


def _resolve_channels(config: Config, env: Mapping[str, str],
                      checks: ConfigChecks | None) -> None:
    """Each channel's URL, checked; a warning for a label selector no line can match."""
    given = {(k, v) for line in config.lines for k, v in line.labels.items()}
    for i, channel in enumerate(config.alerts.channels):
        channel._resolved = _resolve_channel_url(channel, f"alerts.channels[{i}]", env, checks)
        missing = [f"{k}={v}" for k, v in sorted(channel.labels.items()) if (k, v) not in given]
        if missing:
            config._warnings.append(
                f"alerts.channels[{i}].labels: no [[lines]] entry gives {', '.join(missing)}, "
                f"so channel {channel.name} hears of no line")


def _resolve_server(config: Config, env: Mapping[str, str]) -> None:
    """The API token of the gate (and of /metrics when protected)."""
    if config.server.api_token_env is not None:
        value = env.get(config.server.api_token_env, "").strip()
        if not value:
            raise ConfigError("server.api_token_env",
                              f"environment variable {config.server.api_token_env} is not set")
        config.server._api_token = SecretStr(value)
    if config.server.protect_metrics and config.server.api_token_env is None:
        raise ConfigError("server.protect_metrics", "needs server.api_token_env")


def _resolve_token(
    account: AccountConfig, key: str, env: Mapping[str, str], base_dir: Path | None
) -> SecretStr:
    if account.token is not None:
        return account.token
    if account.token_file is not None:
        token_path = account.token_file
        if base_dir is not None and not token_path.is_absolute():
            token_path = base_dir / token_path
        try:
            token = token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}.token_file",
                              f"cannot read {token_path}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"{key}.token_file", f"{token_path} is empty")
        return SecretStr(token)
    name = account.token_env or DEFAULT_TOKEN_ENV
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{key}.token_env", f"environment variable {name} is not set")
    return SecretStr(value)


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
    account: AccountConfig, key: str, env: Mapping[str, str]
) -> SecretStr | None:
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
                         checks: ConfigChecks | None) -> SecretStr:
    if channel.url_env is not None:
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
