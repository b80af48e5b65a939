"""``reputation-monitor alerts preview`` as a user runs it: every message kind through each
channel's templates, printed; nothing sent, no database touched, no secret shown."""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.daemon import cli, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

SECRET_HOOK = "hooks-SECRET-456"
KINDS = ("degraded", "degraded to CRITICAL", "improving", "recovered",
         "no longer CRITICAL (to a min_status CRITICAL channel)", "flagged (service status)",
         "unknown status",
         "first seen degraded", "reminder", "flapping", "settled", "escalated (escalate_after)",
         "silence ended, line still degraded", "grouped (7 lines)",
         "quiet hours ended (summary)", "digest", "trouble: polls failing", "trouble cleared",
         "trouble: deliveries failing", "test")


SLACK_TEMPLATES = """title_template = "{{ summary }}"
body_template = '''
{% if kind in ("single", "group") %}
*{{ summary }}*
{% for e in entries %}
- `{{ e.phone_number }}` {{ e.change }} ({{ e.time_in_previous or "new" }}) <{{ e.doc_url }}>
{% endfor %}
{% else %}{{ default_body }}{% endif %}
'''"""


def write(tmp_path: Path, slack: str = "") -> Path:
    token = tmp_path / "token"
    token.write_text("tok")
    config = tmp_path / "config.toml"
    config.write_text(f'''
[[accounts]]
name = "acme"
token_file = "{token}"

[database]
url = "sqlite:///{tmp_path / 'monitor.db'}"

[[alerts.channels]]
name = "ops"
url = "json://127.0.0.1:9/{SECRET_HOOK}"

[[alerts.channels]]
name = "slack"
url = "json://127.0.0.1:9/slack-{SECRET_HOOK}"
body_format = "markdown"
timezone = "Europe/Berlin"
{slack or SLACK_TEMPLATES}
''')
    config.chmod(0o600)
    return config


def sections(result: CompletedProcess[str], channel: str) -> dict[str, str]:
    """The printed messages of one channel, by kind."""
    text = result.stdout.split(f"════ channel {channel} ")[1].split("════ channel ")[0]
    parts = text.split("\n── ")[1:]
    return {part.split(" ──\n")[0]: part.split(" ──\n", 1)[1] for part in parts}


def test_it_prints_every_kind_for_every_channel_and_sends_nothing(tmp_path: Path) -> None:
    result = cli("alerts", "preview", "--config", str(write(tmp_path)))

    assert result.returncode == 0, result.stderr
    ops, slack = sections(result, "ops"), sections(result, "slack")
    assert tuple(ops) == KINDS and tuple(slack) == KINDS
    assert ops["degraded"].startswith(
        "title: [AT_RISK] +12025550101 (Sales line 1) degraded: HEALTHY → AT_RISK (acme)\n")
    assert "6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered" in ops["grouped (7 lines)"]
    assert "Alerts for this line are paused" in ops["flapping"]
    assert "Reason: Escalated: at or above CRITICAL for 31m." in ops["escalated (escalate_after)"]
    assert "silence on this line ended" in ops["silence ended, line still degraded"]
    assert ops["quiet hours ended (summary)"].splitlines()[1].startswith(
        "Held back during this channel's quiet hours")
    assert "Lines not HEALTHY now" in ops["digest"] and "Poll health" in ops["digest"]
    assert slack["grouped (7 lines)"].splitlines()[:3] == [
        "title: 6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered",
        "body (markdown):",
        "*6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered*",
    ]
    assert "- `+12025550101` (new line) → AT_RISK (new)" in slack["first seen degraded"]
    assert SECRET_HOOK not in result.stdout + result.stderr
    assert not (tmp_path / "monitor.db").exists()


def test_it_previews_only_the_channel_named(tmp_path: Path) -> None:
    result = cli("alerts", "preview", "--config", str(write(tmp_path)), "--channel", "slack")
    assert result.returncode == 0, result.stderr
    assert "════ channel slack (markdown, Europe/Berlin) ════" in result.stdout
    assert "════ channel ops" not in result.stdout


def test_an_unknown_channel_is_a_usage_error_naming_the_configured_ones(tmp_path: Path) -> None:
    result = cli("alerts", "preview", "--config", str(write(tmp_path)), "--channel", "pager")
    assert result.returncode == 2
    assert "--channel: no channel named 'pager' (configured: ops, slack)" in result.stderr


def test_it_shows_when_a_template_fails_and_what_would_be_sent_instead(tmp_path: Path) -> None:
    config = write(tmp_path, slack='body_template = "{{ entry.phone_numbr }}"')
    result = cli("alerts", "preview", "--config", str(config), "--channel", "slack")
    assert result.returncode == 0, result.stderr
    degraded = sections(result, "slack")["degraded"]
    assert degraded.startswith("(template failed: UndefinedError: ")
    assert "phone_numbr" in degraded.splitlines()[0]
    assert "Guide: https://docs.linqapp.com/" in degraded  # the default text, as sent


def test_a_template_syntax_error_stops_it_naming_the_key(tmp_path: Path) -> None:
    config = write(tmp_path, slack='body_template = "{% for e in entries %}"')
    result = cli("alerts", "preview", "--config", str(config))
    assert result.returncode == 2
    assert "config error: alerts.channels[1].body_template: template syntax error" \
           in result.stderr


def test_a_test_alert_goes_out_through_the_channels_templates(tmp_path: Path,
                                                              receiver: Receiver) -> None:
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
                          channels=[("ops", receiver.url("ops"), "AT_RISK")])
    with config.open("a") as f:
        f.write('title_template = "[{{ kind }}] to {{ channel }}"\n'
                'body_template = "*{{ summary }}*"\nbody_format = "markdown"\n')

    result = cli("test-alert", "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    [message] = receiver.wait_for(1, path="ops")
    assert (message.title, message.message) == ("[test] to ops",
                                                "*test notification to channel ops*")
