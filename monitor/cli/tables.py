"""Text tables for people: aligned columns that fit the terminal they are printed on.

Only a terminal is fitted: output piped to a file or another program keeps every column
whole, so `status | grep` still finds a full doc URL.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

EMPTY = "(nothing recorded yet)"
_GAP = 2


@dataclass(frozen=True, slots=True)
class GiveWay:
    """A column that may be shortened to fit, down to ``min_width`` characters; a column
    that would have to be narrower than that is hidden instead."""

    column: str
    min_width: int


def terminal_width() -> int | None:
    """The width of the terminal stdout writes to (``$COLUMNS`` first); None when stdout
    is not a terminal."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, width: int | None = None,
          give_way: Sequence[GiveWay] = ()) -> str:
    """Rows under their headers, columns left-aligned and two spaces apart.

    With ``width``, the columns named in ``give_way`` make room, in that order, until
    the table fits: shortened (ending in "…") or hidden; a last line says which. If it
    still does not fit, it is printed anyway and the terminal wraps it.
    """
    if not rows:
        return EMPTY
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    shown = list(range(len(headers)))
    shortened: list[str] = []
    hidden: list[str] = []
    for rule in give_way if width is not None else ():
        assert width is not None
        excess = sum(widths[i] for i in shown) + _GAP * (len(shown) - 1) - width
        if excess <= 0:
            break
        column = headers.index(rule.column)
        narrower = widths[column] - excess
        if narrower >= max(rule.min_width, len(rule.column)):
            widths[column] = narrower
            shortened.append(rule.column)
        else:
            shown.remove(column)
            hidden.append(rule.column)
    out = [_row([headers[i] for i in shown], [widths[i] for i in shown])]
    out += [_row([r[i] for i in shown], [widths[i] for i in shown]) for r in rows]
    if shortened or hidden:
        what = [f"{', '.join(hidden)} hidden"] if hidden else []
        what += [f"{', '.join(shortened)} shortened"] if shortened else []
        out.append(f"(to fit the terminal: {'; '.join(what)}; --json has everything)")
    return "\n".join(out)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(_cut(cell, w).ljust(w) for cell, w in zip(cells, widths, strict=True)
                     ).rstrip()


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[:width - 1] + "…"
