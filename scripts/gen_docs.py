"""Generate the manual's reference pages from the code they describe.

    python scripts/gen_docs.py           # (re)write docs/reference/*.md
    python scripts/gen_docs.py --check   # exit 1 naming every page that is stale

- ``docs/reference/configuration.md``: every key of the TOML config, walked from the pydantic
  models in ``monitor/config.py``: key path, type, default, and the docstring under the field.
- ``docs/reference/metrics.md``: every metric family ``/metrics`` exposes, read back from an
  exposition rendered by ``monitor.metrics.Metrics``: name, type, labels, help text.

The output depends only on the code: declared order, no timestamps, no environment (a
default computed at start is shown as such), so a committed page equals what this script
generates until the code changes. ``tests/test_docs.py`` calls ``pages()`` to check that.
Importing this module writes nothing; run it with the project's environment (``.venv``),
where ``monitor`` is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from monitor.config import Config, LineConfig, MetricsConfig, parse_duration
from monitor.core.labels import Labeler
from monitor.core.model import LineState
from monitor.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PAGE = "docs/reference/configuration.md"
METRICS_PAGE = "docs/reference/metrics.md"
REGENERATE = "python scripts/gen_docs.py"


def pages() -> dict[str, str]:
    """Every generated page: its path relative to the repository root, and its text."""
    return {CONFIG_PAGE: configuration_page(), METRICS_PAGE: metrics_page()}


def stale_pages(root: Path = ROOT) -> list[str]:
    """The generated pages under ``root`` that are missing or differ from ``pages()``."""
    stale = []
    for name, text in pages().items():
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None, *, root: Path = ROOT) -> int:
    """Write the pages (exit 0), or with ``--check`` compare them (exit 1 if any is stale)."""
    parser = argparse.ArgumentParser(
        prog="gen_docs.py", description="Generate docs/reference/*.md from the code.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed page differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(root)
        for name in stale:
            print(f"{name} is stale: run `{REGENERATE}` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for name, text in pages().items():
        path = root / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {name}")
    return 0


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    path: str  # e.g. "alerts.channels[].min_status"
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Table:
    header: str  # as written in TOML: "" (top level), "[database]", "[[alerts.channels]]"
    description: str
    keys: list[Key]


def config_tables() -> list[Table]:
    """Every table of the config, top level first, then depth-first in declared order."""
    return list(_walk(Config, prefix="", header="", description=""))


def _walk(model: type[BaseModel], *, prefix: str, header: str,
          description: str) -> Iterator[Table]:
    keys = []
    nested: list[tuple[str, type[BaseModel], bool, FieldInfo]] = []
    for name, info in model.model_fields.items():
        section = _section_model(info.annotation)
        if section is not None:
            nested.append((name, *section, info))
        else:
            keys.append(Key(path=prefix + name, type=_type_text(info),
                            default=_default_text(info), description=_description(info)))
    yield Table(header=header, description=description, keys=keys)
    for name, sub, is_array, info in nested:
        dotted = f"{prefix.removesuffix('[].').removesuffix('.')}.{name}".lstrip(".")
        yield from _walk(
            sub, prefix=f"{dotted}[]." if is_array else f"{dotted}.",
            header=f"[[{dotted}]]" if is_array else f"[{dotted}]",
            description=_description(info))


def _section_model(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """(model, is an array of tables) for a field holding a table, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, True
    return None


def _description(info: FieldInfo) -> str:
    if not info.description:
        raise ValueError(f"a config field has no docstring: {info!r}; document it in "
                         "monitor/config.py")
    text = " ".join(info.description.split())
    return _cell(re.sub(r"``(.+?)``", r"`\1`", text))


def _type_text(info: FieldInfo) -> str:
    text = _type_name(info.annotation)
    if _accepts_off(info):
        text += ' or `"off"`'
    limits = _limits(info.metadata)
    return f"{text} ({limits})" if limits else text


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        # An optional key: None is its "unset" default, shown in the default column.
        (inner,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _type_name(inner)
    if origin is Literal:
        return "one of " + ", ".join(f"`{_toml(v)}`" for v in get_args(annotation))
    if origin is list:
        return "list of " + _plural(_type_name(get_args(annotation)[0]))
    if origin is dict:
        return "table of " + _plural(_type_name(get_args(annotation)[1]))
    names: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string",
                             timedelta: "duration", Path: "path", SecretStr: "string (secret)"}
    if annotation in names:
        return names[annotation]
    raise ValueError(f"no documented name for the config type {annotation!r}: add one to "
                     "scripts/gen_docs.py")


def _plural(name: str) -> str:
    return name.replace("string", "strings", 1) if name.startswith("string") else name + "s"


def _accepts_off(info: FieldInfo) -> bool:
    """True when one of the field's before-validators reads ``"off"`` as unset."""
    for item in info.metadata:
        func: Callable[[object], object] | None = getattr(item, "func", None)
        if func is None or func is parse_duration:
            continue
        try:
            if func("off") is None:
                return True
        except ValueError:
            continue
    return False


def _limits(metadata: list[Any]) -> str:
    low = high = min_len = max_len = pattern = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.MinLen):
            min_len = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            max_len = item.max_length
        elif getattr(item, "pattern", None) is not None:
            pattern = item.pattern
    parts = []
    if low is not None and high is not None:
        parts.append(f"{low} to {high}")
    elif low is not None:
        parts.append(f"at least {low}")
    elif high is not None:
        parts.append(f"at most {high}")
    if max_len is not None:
        parts.append(f"{min_len or 0} to {max_len} characters")
    elif min_len is not None:
        parts.append("not empty")
    if pattern is not None:
        parts.append(f"matching `{pattern}`")
    return ", ".join(parts)


def _default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "computed at start"
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "unset"
    return f"`{_toml(info.default)}`"


def _toml(value: object) -> str:
    """A value as it would be written in the config file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, timedelta):
        return f'"{_duration(value)}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"no TOML spelling for the default {value!r}: add one to "
                     "scripts/gen_docs.py")


def _duration(value: timedelta) -> str:
    """The shortest spelling ``parse_duration`` reads back as ``value``: "1h30m", "400d"."""
    millis = round(value.total_seconds() * 1000)
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            out += f"{count}{unit}"
    out = out or "0s"
    assert parse_duration(out) == value, (out, value)
    return out


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell.

    Python-Markdown splits cells on a bare ``|`` outside code spans only, and shows a
    backslash inside a code span as it is: escape the pipes of the prose, not of the code.
    """
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else part.replace("|", r"\|")
                   for part in parts)


def configuration_page() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_docs.py from the models in monitor/config.py: do not",
        "     edit; change the field docstrings there, then run `python scripts/gen_docs.py`. -->",
        "",
        "Every key the config file accepts, table by table, in the order `monitor/config.py`",
        "declares them. A key path such as `accounts[].poll_interval` names the key",
        "`poll_interval` of every `[[accounts]]` table. Durations are strings such as",
        '`"30s"`, `"5m"`, `"1h30m"`, `"7d"`; *unset* means the key may be left out, with the',
        "meaning its description gives. Unknown keys are errors.",
        "[Configuration](../configuration.md) explains how the file is read and checked.",
    ]
    for table in config_tables():
        title = table.header or "Top level"
        lines += ["", f"## `{title}`" if table.header else f"## {title}", ""]
        if table.description:
            lines += [table.description, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{k.path}` | {k.type} | {k.default} | {k.description} |"
                  for k in table.keys]
    return "\n".join(lines) + "\n"


# --- metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: str  # as exposed: a counter's name ends in _total
    type: str
    labels: list[str]
    help: str
    buckets: list[str]  # a histogram's upper bounds, else empty
    per_line: list[str]  # the [metrics] per_line modes that export it


# A sample line for the synthetic exposition: labelled by one [[lines]] entry, flagged and
# flapping, so that every family, even those only some lines get, shows its labels.
_SAMPLE_LABEL = "key"
_SAMPLE_LINE = LineState(account="account", line_id="line", phone_number="+10000000000",
                         status="HEALTHY", doc_url=None,
                         since=datetime(2000, 1, 1, tzinfo=UTC), service_status="FLAGGED")


def metric_families() -> list[Family]:
    """Every family, in the order ``/metrics`` writes them with ``per_line = "full"``."""
    modes: tuple[str, ...] = get_args(MetricsConfig.model_fields["per_line"].annotation)
    exposed = {mode: _exposition(mode) for mode in modes}
    families = []
    for family in exposed["full"]:
        labels: list[str] = []
        buckets: list[str] = []
        for sample in family.samples:
            for label, value in sample.labels.items():
                if family.type == "histogram" and label == "le":
                    buckets.append(value)
                elif label not in labels:
                    labels.append(label)
        name = f"{family.name}_total" if family.type == "counter" else family.name
        families.append(Family(
            name=name, type=family.type,
            labels=["label_<key>…" if label == f"label_{_SAMPLE_LABEL}" else label
                    for label in labels],
            help=family.documentation, buckets=buckets,
            per_line=[mode for mode in modes
                      if family.name in {f.name for f in exposed[mode]}]))
    return families


def _exposition(per_line: str) -> list[Any]:
    """The families a fresh ``Metrics`` writes once every one of them has a sample."""
    labeler = Labeler([LineConfig(match="*", name="Sample", labels={_SAMPLE_LABEL: "x"})])
    metrics = Metrics(per_line=per_line, labeler=labeler)
    for wrapper in vars(metrics).values():
        if isinstance(wrapper, MetricWrapperBase):
            # prometheus-client has no public accessor for a metric's label names, and a
            # labelled metric shows them only once it has a child.
            names = wrapper._labelnames
            if names:
                wrapper.labels(*["x"] * len(names))
    metrics.line_series.update([_SAMPLE_LINE])
    metrics.flapping.update([_SAMPLE_LINE], lambda _state: True)
    metrics.line_info.update([_SAMPLE_LINE])
    metrics.update_service_status([_SAMPLE_LINE])
    return list(text_string_to_metric_families(metrics.render().decode()))


def metrics_page() -> str:
    lines = [
        "# Metrics reference",
        "",
        "<!-- Generated by scripts/gen_docs.py from monitor/metrics.py: do not edit; change",
        "     the metric definitions there, then run `python scripts/gen_docs.py`. -->",
        "",
        "Every metric family the daemon serves at `/metrics`, in the order it writes them, with",
        "the help text `monitor/metrics.py` gives it. The `per_line` column lists the",
        "`[metrics] per_line` settings under which the family is exported.",
        "[Metrics](../metrics.md) explains what the values and label values mean, which",
        "families are per replica, and how to query them.",
        "",
        "| metric | type | labels | `per_line` | help |",
        "|---|---|---|---|---|",
    ]
    for f in metric_families():
        kind = f.type
        if f.buckets:
            kind += " (`le`: " + ", ".join(f.buckets) + ")"
        labels = ", ".join(f"`{label}`" for label in f.labels) or "none"
        modes = "any" if len(f.per_line) == len(get_args(
            MetricsConfig.model_fields["per_line"].annotation)) else ", ".join(
                f"`{m}`" for m in f.per_line)
        lines.append(f"| `{f.name}` | {kind} | {labels} | {modes} | {_cell(f.help)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
