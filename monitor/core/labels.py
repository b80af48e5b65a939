"""Names and labels of lines, from the ``[[lines]]`` entries of the config.

Entries apply in file order. Every entry that matches a line contributes its labels (a
later entry overrides a key an earlier one set); the line's name is the one of the first
matching entry that has a name. An entry matches a line when its ``match`` equals the
phone number or the line id, or, for a glob (``*``, ``?``, ``[...]``), matches either;
an entry with an ``account`` only matches lines of that account.

Fast at 100k lines: exact entries are found through dicts, only globs are scanned, and a
line no entry matches costs two dict lookups and returns one shared empty ``LineMeta``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Protocol

from monitor.core.model import LineMeta

_GLOB_CHARS = frozenset("*?[")
EMPTY = LineMeta()


class LineEntry(Protocol):
    """What the labeler reads from one config entry (monitor.config.LineConfig)."""

    @property
    def match(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def account(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Rule:
    order: int  # position in the file: merging follows it
    name: str | None
    labels: Mapping[str, str]
    account: str | None


@dataclass(frozen=True, slots=True)
class _Glob:
    rule: _Rule
    prefix: str  # the literal text before the first wildcard: a cheap first test
    pattern: re.Pattern[str]

    def matches(self, text: str) -> bool:
        return text.startswith(self.prefix) and self.pattern.match(text) is not None


class Labeler:
    """Answers "what does the config say about this line?" (``meta``)."""

    def __init__(self, entries: Sequence[LineEntry]) -> None:
        self._exact: dict[str, list[_Rule]] = {}
        self._globs: list[_Glob] = []
        keys: set[str] = set()
        for order, entry in enumerate(entries):
            rule = _Rule(order, entry.name, dict(entry.labels), entry.account)
            keys.update(entry.labels)
            if _GLOB_CHARS.isdisjoint(entry.match):
                self._exact.setdefault(entry.match, []).append(rule)
            else:
                prefix = re.split(r"[*?\[]", entry.match, maxsplit=1)[0]
                self._globs.append(_Glob(rule, prefix, re.compile(translate(entry.match))))
        self.label_keys: tuple[str, ...] = tuple(sorted(keys))

    @classmethod
    def from_config(cls, entries: Iterable[LineEntry]) -> Labeler:
        return cls(list(entries))

    def __bool__(self) -> bool:
        """False when the config has no ``[[lines]]``: callers may skip the work."""
        return bool(self._exact or self._globs)

    def meta(self, account: str, line_id: str, phone_number: str) -> LineMeta:
        """The merged name and labels of the line (``EMPTY`` when no entry matches)."""
        rules = [*self._exact.get(phone_number, ()),
                 *(self._exact.get(line_id, ()) if line_id != phone_number else ()),
                 *(g.rule for g in self._globs
                   if g.matches(phone_number) or g.matches(line_id))]
        rules = [r for r in rules if r.account is None or r.account == account]
        if not rules:
            return EMPTY
        rules.sort(key=lambda r: r.order)
        name = next((r.name for r in rules if r.name is not None), None)
        labels: dict[str, str] = {}
        for rule in rules:
            labels.update(rule.labels)
        return LineMeta(name=name, labels=labels)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every ``key = value`` of ``selector`` is among ``labels`` (an empty
    selector matches every line): how a channel selects lines by label."""
    return all(labels.get(key) == value for key, value in selector.items())
