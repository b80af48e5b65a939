"""The scenario file: a scripted story of what the fake Linq API answers, poll after poll.

A scenario is TOML (see ``scenarios/demo.toml`` for a commented example)::

    token = "sim-token"     # bearer token the fake API expects
    lines = 12              # generated lines +12025550001 ... +12025550012, all HEALTHY
    loop = false            # after the last step: start over (true) or keep the last state
    legacy = "none"         # "both" | "only" | "none": emit the deprecated `health_status`
    chats = 20              # chats per line (GET /v3/chats), all HEALTHY at first
    chats_rate_limit = 30   # GET /v3/chats requests a minute before 429 + Retry-After
    start = 2026-11-01T00:00:00Z   # the scenario clock at step 0 (default: when loaded)
    step_seconds = 21600    # scenario time per step: days of chat history in a few polls

    [[line]]                # explicit extra lines
    phone_number = "+12025559000"
    status = "AT_RISK"      # optional; also `id`, `doc_url`, `forwarding_number`

    [[step]]                # one step per authenticated GET /v3/phone_numbers
    set = { "+12025550001" = "AT_RISK" }   # keys: phone number or id
    remove = ["+12025550003"]
    add = [{ phone_number = "+12025550003", status = "CRITICAL" }]
    error = 500             # answer this status with Linq's error envelope
    retry_after = 2         # Retry-After seconds (`retry_after_date = true` sends an HTTP date)
    raw = '{"data": []}'    # answer this exact text instead of the fleet (with `error`: its body)
    delay = 1.5             # seconds to wait before answering
    legacy_field = true     # this answer also carries `health_status`
    chats = { "+12025550001" = { AT_RISK = 3, CRITICAL = 1 } }  # the line's unhealthy chats now

Within a step, state changes apply in the order remove, add, set, and always before the
answer, so an error step still moves the story on. Loading validates the whole story up
front (a `set` of a line that is not there at that point is an error), because a typo found
at start-up is cheaper than a scenario that silently does nothing at step 14.

The scenario clock: step N (counting from 1) happens at ``start + N * step_seconds``; chat
health changes are stamped with it, so a scenario can tell a story of days (chats souring
one after another) in a few seconds of polls. A step's ``chats`` gives, per line, how many
of its chats are in each unhealthy status from then on (the rest HEALTHY).
"""

from __future__ import annotations

import hashlib
import tomllib
import uuid
from datetime import datetime, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LegacyMode = Literal["both", "only", "none"]

GENERATED_PREFIX = "+1202555"
_PACKAGE = "monitor.simulator"
_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes
# E.164: a plus, a non-zero country digit, at most 15 digits in all.
_E164 = r"^\+[1-9][0-9]{6,14}$"


def default_line_id(phone_number: str) -> str:
    """The id a line gets when none is given: ``uuid5(NAMESPACE_URL, phone_number)``.

    Computed by hand because `uuid.uuid5` builds a UUID object per call, which is most of
    the cost of generating 100,000 lines; the result is the same string.
    """
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + phone_number.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class LineSpec(BaseModel):
    """One line as a scenario declares it (in ``[[line]]`` or a step's ``add``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone_number: str = Field(pattern=_E164)
    id: str | None = Field(default=None, min_length=1)
    status: str = Field(default="HEALTHY", min_length=1)
    doc_url: str | None = None
    forwarding_number: str | None = None
    line_type: Literal["iMessage", "RCS"] | None = "iMessage"

    @property
    def line_id(self) -> str:
        return self.id or default_line_id(self.phone_number)


class Step(BaseModel):
    """What one poll changes and how it is answered."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # `set` is the natural word in the file; the attribute avoids shadowing the builtin.
    changes: dict[str, str] = Field(default_factory=dict, alias="set")
    remove: list[str] = Field(default_factory=list)
    add: list[LineSpec] = Field(default_factory=list)
    error: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    retry_after_date: bool = False
    raw: str | None = None
    delay: float = Field(default=0.0, ge=0)
    legacy_field: bool = False
    chats: dict[str, dict[Literal["AT_RISK", "CRITICAL", "OPTED_OUT"], int]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _retry_after_needs_error(self) -> Step:
        if self.retry_after is not None and self.error is None:
            raise ValueError("retry_after: only meaningful together with `error`")
        if self.retry_after_date and self.retry_after is None:
            raise ValueError("retry_after_date: needs `retry_after`")
        return self


class Scenario(BaseModel):
    """A whole scenario file. Build it with `load_scenario` or `parse_scenario`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(default="sim-token", min_length=1)
    # Generated numbers carry a 4-digit index, hence the ceiling.
    lines: int = Field(default=0, ge=0, le=9999)
    loop: bool = False
    legacy: LegacyMode = "none"
    chats: int = Field(default=0, ge=0, le=1000)
    chats_rate_limit: int | None = Field(default=None, ge=1)
    start: datetime | None = None
    step_seconds: float = Field(default=0.0, ge=0)
    line: list[LineSpec] = Field(default_factory=list)
    step: list[Step] = Field(default_factory=list)

    def step_time(self, start: datetime, step: int) -> datetime:
        """The scenario clock at step `step` (0: before the first), from `start`."""
        return start + timedelta(seconds=self.step_seconds * step)

    def initial_lines(self) -> list[LineSpec]:
        """The fleet before the first step: generated lines first, then explicit ones."""
        generated = [
            LineSpec(phone_number=f"{GENERATED_PREFIX}{index:04d}")
            for index in range(1, self.lines + 1)
        ]
        return generated + list(self.line)

    @model_validator(mode="after")
    def _story_is_consistent(self) -> Scenario:
        # Dry-run the steps over the set of lines so a bad reference names its step.
        fleet = _Fleet()
        for spec in self.initial_lines()[: self.lines]:
            fleet.add(spec, "lines")
        for index, spec in enumerate(self.line):
            fleet.add(spec, f"line[{index}]")
        for number, step in enumerate(self.step):
            where = f"step[{number}]"
            for key in step.remove:
                fleet.remove(key, f"{where}.remove")
            for index, spec in enumerate(step.add):
                fleet.add(spec, f"{where}.add[{index}]")
            for key in step.changes:
                fleet.phone_of(key, f"{where}.set")
            for key, counts in step.chats.items():
                fleet.phone_of(key, f"{where}.chats")
                if any(n < 0 for n in counts.values()) or sum(counts.values()) > self.chats:
                    raise ValueError(f"{where}.chats: {key}: counts must be 0 or more and add "
                                     f"up to at most `chats` ({self.chats})")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start: give a time zone, e.g. 2026-11-01T00:00:00Z")
        return self


class _Fleet:
    """Which lines exist at a point of the story: phone number <-> id, both ways."""

    def __init__(self) -> None:
        self._id_by_phone: dict[str, str] = {}
        self._phone_by_id: dict[str, str] = {}

    def add(self, spec: LineSpec, where: str) -> None:
        if spec.phone_number in self._id_by_phone:
            raise ValueError(f"{where}: line {spec.phone_number} already exists")
        if spec.line_id in self._phone_by_id:
            raise ValueError(f"{where}: id {spec.line_id} already in use")
        self._id_by_phone[spec.phone_number] = spec.line_id
        self._phone_by_id[spec.line_id] = spec.phone_number

    def phone_of(self, key: str, where: str) -> str:
        if key in self._id_by_phone:
            return key
        if key in self._phone_by_id:
            return self._phone_by_id[key]
        raise ValueError(f"{where}: no line {key!r} at this step (phone number or id)")

    def remove(self, key: str, where: str) -> None:
        phone = self.phone_of(key, where)
        del self._phone_by_id[self._id_by_phone.pop(phone)]


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse scenario TOML text.

    Raises ValueError naming `source` and the key path of every problem.
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: " + "; ".join(_describe(err) for err in exc.errors())) from exc


def _describe(err: Any) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"])
    path = path.lstrip(".")
    # Our own validators already name the path; pydantic would prefix "Value error, ".
    cause = err.get("ctx", {}).get("error")
    message = str(cause) if err["type"] == "value_error" and cause is not None else err["msg"]
    return f"{path}: {message}" if path else message


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package, e.g. ``["demo", ...]``."""
    folder = resources.files(_PACKAGE).joinpath("scenarios")
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def builtin_scenario(name: str) -> Traversable:
    """The packaged scenario file called `name` (without ``.toml``).

    Raises ValueError listing the shipped names when there is none by that name.
    """
    entry = resources.files(_PACKAGE).joinpath("scenarios", f"{name}.toml")
    if not entry.is_file():
        raise ValueError(f"no built-in scenario {name!r}; have: {', '.join(builtin_scenarios())}")
    return entry


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Load a scenario from a file path, or a built-in one by name (``"demo"``).

    A bare word without a ``.toml`` suffix or a path separator is taken as a built-in name.
    Raises ValueError (unreadable file, bad TOML, invalid content).
    """
    text_path = str(path_or_name)
    if isinstance(path_or_name, Path) or text_path.endswith(".toml") or "/" in text_path:
        path = Path(path_or_name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read scenario: {exc.strerror}") from exc
        return parse_scenario(text, source=str(path))
    return parse_scenario(builtin_scenario(text_path).read_text(encoding="utf-8"), source=text_path)
