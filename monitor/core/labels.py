"""Names and labels of lines, from the ``[[lines]]`` entries of the config.

Entries apply in file order. Every entry that matches a line contributes its labels (a
later entry overrides a key an earlier one set); the line's name is the one of the first
matching entry that has a name. An entry matches a line when its ``match`` equals the
phone number or the line id, or, for a glob (``*``, ``?``, ``[...]``), matches either;
an entry with an ``account`` only matches lines of that account.

Fast at 100k lines: exact entries are found through a dict, globs through a dict of their
literal prefixes (``"+1415"`` of ``"+1415*"``), so the cost of a line barely grows with the
number of entries; lines matched by the same entries share one ``LineMeta``, and a line
no entry matches gets the one shared empty ``LineMeta``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Protocol

from monitor.core.model import LineMeta, LineRef

_GLOB_CHARS = frozenset("*?[")
# A label name must be usable in Prometheus as `label_<name>` (linq_reputation_line_info).
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LABEL_NAME_RULE = "letters, digits and _, not starting with a digit"
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


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity
class _Rule:
    order: int  # position in the file: merging follows it
    name: str | None
    labels: Mapping[str, str]
    account: str | None


@dataclass(frozen=True, slots=True)
class _Glob:
    rule: _Rule
    pattern: re.Pattern[str]


class Labeler:
    """Answers "what does the config say about this line?" (``meta``)."""

    def __init__(self, entries: Sequence[LineEntry]) -> None:
        self._exact: dict[str, list[_Rule]] = {}
        # Globs indexed by their literal prefix (the text before the first wildcard), per
        # prefix length: a line is tried only against globs whose prefix it starts with,
        # so 200 area-code globs cost one dict lookup, not 200 regex matches.
        by_length: dict[int, dict[str, list[_Glob]]] = {}
        keys: set[str] = set()
        for order, entry in enumerate(entries):
            rule = _Rule(order, entry.name, dict(entry.labels), entry.account)
            keys.update(entry.labels)
            if _GLOB_CHARS.isdisjoint(entry.match):
                self._exact.setdefault(entry.match, []).append(rule)
            else:
                prefix = re.split(r"[*?\[]", entry.match, maxsplit=1)[0]
                by_length.setdefault(len(prefix), {}).setdefault(prefix, []).append(
                    _Glob(rule, re.compile(translate(entry.match))))
        self._globs = sorted(by_length.items())
        # Many lines share one combination of entries: they share one LineMeta too.
        self._merged: dict[tuple[_Rule, ...], LineMeta] = {}
        self.label_keys: tuple[str, ...] = tuple(sorted(keys))

    @classmethod
    def from_config(cls, entries: Iterable[LineEntry]) -> Labeler:
        return cls(list(entries))

    def __bool__(self) -> bool:
        """False when the config has no ``[[lines]]``: callers may skip the work."""
        return bool(self._exact or self._globs)

    def meta(self, line: LineRef) -> LineMeta:
        """The merged name and labels of the line (``EMPTY`` when no entry matches)."""
        if not self._exact and not self._globs:
            return EMPTY
        account, line_id, phone_number = line.account, line.line_id, line.phone_number
        found: set[_Rule] = set()
        for text in (phone_number, line_id):
            found.update(self._exact.get(text, ()))
            for length, by_prefix in self._globs:
                for glob in by_prefix.get(text[:length], ()):
                    if glob.pattern.match(text):
                        found.add(glob.rule)
        rules = tuple(sorted((r for r in found if r.account in (None, account)),
                             key=lambda r: r.order))
        if not rules:
            return EMPTY
        meta = self._merged.get(rules)
        if meta is None:
            labels: dict[str, str] = {}
            for rule in rules:
                labels.update(rule.labels)
            name = next((r.name for r in rules if r.name is not None), None)
            meta = self._merged[rules] = LineMeta(name=name, labels=labels)
        return meta


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every ``key = value`` of ``selector`` is among ``labels`` (an empty
    selector matches every line): how a channel selects lines by label."""
    return all(labels.get(key) == value for key, value in selector.items())
