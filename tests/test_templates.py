"""Per-channel Jinja2 templates: what they can say, errors at load naming the key, and a
failing template never costing the alert."""

from __future__ import annotations

import logging
import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.checks import ALERT_CHECKS
from monitor.alerts.notifier import Channel
from monitor.alerts.templates import Renderer
from monitor.config import parse_config
from monitor.core.digest import Digest, PollHealth
from monitor.core.model import Entry, Message, NoticeKind
from monitor.core.render import render_entries
from monitor.core.trouble import Trouble, TroubleKind
from monitor.errors import ConfigError
from tests.support.receiver import Receiver

ENV = {"LINQ_API_V3_API_KEY": "tok"}
AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"


def entry(phone: str = "+12025550100", to_status: str = "CRITICAL", **kw: Any) -> Entry:
    values: dict[str, Any] = dict(
        kind=NoticeKind.DEGRADED, account="sales", line_id="uuid-1", phone_number=phone,
        from_status="AT_RISK", to_status=to_status, at=AT,
        previous_since=AT - timedelta(hours=2), doc_url=DOC, name="Sales 1")
    values.update(kw)
    return Entry(**values)


def channel_config(**keys: Any) -> dict[str, Any]:
    return {"accounts": [{"name": "main"}], "alerts": {"channels": [
        {"name": "ops", "url": "json://127.0.0.1:9/ops"},
        {"name": "slack", "url": "json://127.0.0.1:9/slack", **keys},
    ]}}


def renderer(**keys: Any) -> Renderer:
    config = parse_config(channel_config(**keys), environ=ENV)
    return Renderer.for_channel(config.alerts.channels[1])


def test_a_channel_without_templates_gets_the_default_text() -> None:
    assert renderer().render([entry()], now=AT) == render_entries([entry()], now=AT)


def test_a_title_template_sees_the_entry_fields() -> None:
    message = renderer(title_template="{{ entry.phone_number }} ({{ entry.name }}) is "
                                      "{{ entry.to_status }} after {{ entry.time_in_previous }}"
                       ).render([entry()], now=AT)
    assert message.title == "+12025550100 (Sales 1) is CRITICAL after 2h"
    assert message.body == render_entries([entry()], now=AT).body  # default body kept


def test_a_markdown_body_lists_a_group_with_summary_and_more() -> None:
    template = ("**{{ summary }}**\n{% for e in entries %}"
                "- `{{ e.phone_number }}` {{ e.from_status }} → {{ e.to_status }} "
                "[guide]({{ e.doc_url }})\n{% endfor %}"
                "{% if more %}+{{ more }} more{% endif %}")
    r = Renderer("slack", body_template=template, body_format="markdown", limit=2)
    message = r.render([entry(phone=f"+1202555010{n}") for n in range(5)], now=AT)
    assert message.body_format == "markdown"
    assert message.body.splitlines() == [
        "**5 lines degraded: 5 CRITICAL**",
        f"- `+12025550100` AT_RISK → CRITICAL [guide]({DOC})",
        f"- `+12025550101` AT_RISK → CRITICAL [guide]({DOC})",
        "+3 more",
    ]


def test_templates_branch_on_kind_and_reach_digest_and_trouble() -> None:
    template = ("{% if kind == 'digest' %}{{ digest.polls[0].account }}: "
                "{{ digest.polls[0].successes }} ok"
                "{% elif kind == 'trouble' %}{{ trouble.subject }} since "
                "{{ trouble.since | time }}"
                "{% elif kind == 'test' %}test to {{ channel }}"
                "{% else %}{{ entry.headline }}{% endif %}")
    r = Renderer("slack", body_template=template, timezone="Europe/Berlin")
    digest = Digest(AT - timedelta(days=1), AT, (), (), 0, (),
                    (PollHealth("acme", 1440, 0, AT, None),))
    assert r.render_digest(digest, now=AT).body == "acme: 1440 ok"
    trouble = Trouble(TroubleKind.POLLS_FAILING, "acme", since=AT)
    assert r.render_trouble(trouble, now=AT).body == "acme since 2026-11-27 10:30 CET"
    assert r.render_test(now=AT).body == "test to slack"
    assert r.render([entry()], now=AT).body == "degraded: AT_RISK → CRITICAL"


def test_html_bodies_escape_what_they_interpolate() -> None:
    r = Renderer("mail", body_template="<p>{{ entry.name }}</p>", body_format="html")
    assert r.render([entry(name="<script>")], now=AT).body == "<p>&lt;script&gt;</p>"


def test_the_duration_filter_and_default_text_are_available() -> None:
    r = Renderer("x", body_template="{{ 3725 | duration }}\n{{ default_body }}")
    body = r.render([entry()], now=AT).body
    assert body.startswith("1h 2m\nAccount: sales")


@pytest.mark.parametrize("key", ["title_template", "body_template"])
def test_a_template_syntax_error_is_a_config_error_naming_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(channel_config(**{key: "{{ entry.phone_number }"}), environ=ENV,
                     checks=ALERT_CHECKS)
    assert str(info.value).startswith(f"alerts.channels[1].{key}: template syntax error on "
                                      "line 1")


def test_a_markdown_or_html_format_needs_a_body_template() -> None:
    with pytest.raises(ConfigError, match=r"alerts.channels\[1\].body_format: 'html' needs"):
        parse_config(channel_config(body_format="html"), environ=ENV)


@pytest.mark.parametrize(("keys", "key", "reason"), [
    ({"digest": "9am"}, "digest", "not a time of day"),
    ({"digest": "24:00"}, "digest", "not a time of day"),
    ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
])
def test_digest_time_and_time_zone_are_validated(keys: dict[str, str], key: str,
                                                 reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(channel_config(**keys), environ=ENV)
    assert str(info.value).startswith(f"alerts.channels[1].{key}: ")
    assert reason in str(info.value)


def test_a_digest_time_is_read_in_the_channels_time_zone() -> None:
    config = parse_config(channel_config(digest="09:15", timezone="America/New_York"),
                          environ=ENV)
    slack = config.alerts.channels[1]
    assert (slack.digest_time.hour, slack.digest_time.minute) == (9, 15)  # type: ignore[union-attr]
    assert str(slack.zone) == "America/New_York"
    assert config.alerts.channels[0].timezone == "UTC" and config.alerts.channels[0].digest is None


@pytest.mark.parametrize("template", [
    "{{ entry.no_such_field }}",           # StrictUndefined: a typo is an error
    "{{ entries[0].at.__class__ }}",       # the sandbox refuses internals
    "{{ 1 // 0 }}",                        # any Python error
    "{% if false %}x{% endif %}",          # nothing to send
])
def test_a_template_failing_at_render_time_sends_the_default_text_and_logs_why(
        template: str, caplog: pytest.LogCaptureFixture) -> None:
    reasons: list[str] = []
    r = Renderer("slack", body_template=template, body_format="markdown",
                 on_fallback=reasons.append)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts.templates"):
        message = r.render([entry()], now=AT)
    assert message == render_entries([entry()], now=AT)
    assert message.body_format == "text"
    assert len(reasons) == 1
    assert "sending the default text" in caplog.text and reasons[0] in caplog.text
    assert caplog.records[0].channel == "slack"  # type: ignore[attr-defined]


async def test_the_body_format_reaches_apprise(receiver: Receiver) -> None:
    # A text-only endpoint: Apprise converts an HTML body to text, and leaves text alone.
    channel = Channel("mail", receiver.url("mail") + "?format=text")
    html = Renderer("mail", body_template="<p><b>{{ entry.to_status }}</b> &amp; more</p>",
                    body_format="html").render([entry()], now=AT)
    await channel.send(html, timeout=10)
    await channel.send(Message("t", "<b>CRITICAL</b>"), timeout=10)
    assert [m.message for m in receiver.wait_for(2)] == ["CRITICAL & more", "<b>CRITICAL</b>"]


def test_the_readme_example_template_renders_a_group() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs/messages.md").read_text()
    section = page.split("\n## Templates\n")[1]
    example = section.split("```toml\n")[1].split("```")[0]
    raw = tomllib.loads('[[accounts]]\nname = "main"\n' + example)
    config = parse_config(raw, environ={**ENV, "SLACK_WEBHOOK_URL": "json://127.0.0.1:9/x"})
    r = Renderer.for_channel(config.alerts.channels[0], limit=2)
    message = r.render([entry(phone=f"+1202555010{n}") for n in range(3)], now=AT)
    assert message.title == "3 lines degraded: 3 CRITICAL"
    assert message.body.splitlines() == [
        "*3 lines degraded: 3 CRITICAL*",
        f"- `+12025550100` Sales 1: degraded: AT_RISK → CRITICAL (2h) <{DOC}|guide>",
        f"- `+12025550101` Sales 1: degraded: AT_RISK → CRITICAL (2h) <{DOC}|guide>",
        "+1 more",
    ]
    held = r.render([entry(phone=f"+1202555010{n}") for n in range(2)], now=AT, held=True)
    assert held.body.splitlines()[0] == "*2 lines degraded: 2 CRITICAL* (held during quiet hours)"
    single = r.render([entry()], now=AT)
    assert single.body == render_entries([entry()], now=AT).body  # the default text, whole
    assert r.render_test(now=AT).title == "Linq reputation monitor: test notification"


def test_the_example_config_ships_the_readme_template() -> None:
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs/messages.md").read_text().split("\n## Templates\n")[1]
    documented = tomllib.loads(page.split("```toml\n")[1].split("```")[0])
    shipped = (root / "config.example.toml").read_text()
    lines = shipped[shipped.index("# title_template"):].splitlines()
    block = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[:lines.index(
        "# '''", 2) + 1])
    example = tomllib.loads(block)
    (channel,) = documented["alerts"]["channels"]
    assert example["body_template"] == channel["body_template"]
    assert example["title_template"] == channel["title_template"]


def test_a_digest_time_may_name_its_second() -> None:
    config = parse_config(channel_config(digest="09:15:30"), environ=ENV)
    assert config.alerts.channels[1].digest_time == time(9, 15, 30)
