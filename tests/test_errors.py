"""The exception tree drawn in monitor/errors.py's docstring is the tree the classes form."""

from __future__ import annotations

import inspect
import re

from monitor import errors


def drawn_parents() -> dict[str, str]:
    """Each class in the docstring's drawing, and the class it is drawn under."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        # The drawing is indented four spaces; each level adds four more ("│   " or "    ").
        found = re.match(r"^ {4}([│ ]*)(?:[├└]── )?([A-Z]\w+)\s", line + " ")
        if not found or not hasattr(errors, found.group(2)):
            continue
        depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
        name = found.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    real = {name: cls.__mro__[1].__name__
            for name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.MonitorError) and cls is not errors.MonitorError}
    assert drawn_parents() == real
