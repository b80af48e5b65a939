"""Push liveness: will Linq's webhooks reach us, and are the ones that do accepted?

Two signs of a silent push path, each kept here for the trouble check and ``/readyz``:
- an account's subscription to ``phone_number.status_updated`` is missing, inactive or
  points elsewhere (``check``, at start and daily, for the accounts this replica holds);
- signed webhooks are being rejected (``rejected``/``accepted``): after
  ``REJECTIONS_TO_ALARM`` in a row with no accepted one between, the secret was most
  likely rotated (or another sender uses our URL).

Each finding is ``None`` (judged fine here), a reason, or absent (not judged here: another
replica's account, or no signed webhook seen yet), so that one replica never clears what
another found.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from monitor.config import AccountConfig
from monitor.core.push import subscription_problem
from monitor.webhooks.subscriptions import fetch_subscriptions

REJECTIONS_TO_ALARM = 3
# The subject of the rejected-signatures trouble: not an account (a rejected webhook
# matched none), so every channel hears it.
SIGNATURES = "signatures"


@dataclass(frozen=True, slots=True)
class _Rejections:
    count: int = 0
    since: datetime | None = None
    last_error: str | None = None
    accepted_once: bool = False


class PushWatch:
    def __init__(self, *, expected_url: str | None = None,
                 rejections_to_alarm: int = REJECTIONS_TO_ALARM) -> None:
        self._expected_url = expected_url
        self._threshold = rejections_to_alarm
        self._subscriptions: dict[str, str | None] = {}  # account -> problem, once checked
        self._rejections = _Rejections()

    async def check(self, account: AccountConfig) -> str | None:
        """Fetch the account's subscriptions and remember what is wrong (None: nothing).
        Raises ApiError (nothing remembered: a failed check proves nothing)."""
        problem = subscription_problem(await fetch_subscriptions(account),
                                       expected_url=self._expected_url)
        self._subscriptions[account.name] = problem
        return problem

    def rejected(self, reason: str, *, now: datetime) -> bool:
        """A signed webhook was refused; True when this one sets off the alarm."""
        before = self._rejections
        self._rejections = _Rejections(before.count + 1, before.since or now, reason,
                                       before.accepted_once)
        return self._rejections.count == self._threshold

    def accepted(self) -> None:
        """A signed webhook verified: the secret works."""
        self._rejections = _Rejections(accepted_once=True)

    def findings(self, held: Collection[str]) -> dict[str, str | None]:
        """Subject -> problem (or None: fine) for what this replica can judge: the accounts
        it holds and has checked, and the signatures once any signed webhook arrived."""
        found = {a: p for a, p in self._subscriptions.items() if a in held}
        rejections = self._rejections
        if rejections.count >= self._threshold:
            found[SIGNATURES] = (f"{rejections.count} signed webhooks in a row rejected "
                                 f"(last: {rejections.last_error}); was the signing secret "
                                 "rotated?")
        elif rejections.accepted_once and rejections.count == 0:
            found[SIGNATURES] = None
        return found

    def reasons(self, held: Collection[str]) -> list[str]:
        """What ``/readyz`` says about push, one line per problem."""
        return [f"webhooks: {problem}" if subject == SIGNATURES
                else f"account {subject}: {problem}"
                for subject, problem in sorted(self.findings(held).items()) if problem]
