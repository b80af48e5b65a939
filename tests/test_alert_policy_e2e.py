"""Alert policy end to end: the daemon as a subprocess, the simulator over a real socket,
messages received through Apprise's real ``json://`` notifier. Grouping, debounce, flapping,
reminders across a restart, escalation, routing by labels with a channel's own templates,
quiet hours across a restart, digests, silences, and the monitor's own trouble.

Waits are for events (a message arriving, a poll counted); spacing between reminders is
read from arrival times, never asserted by sleeping.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import TOKEN, DaemonProcess, cli, wait_until, write_config
from tests.support.receiver import Received, Receiver

pytestmark = pytest.mark.timeout(420)


def start(tmp_path: Path, sim_server: SimulatorServer, database_url: str, *,
          channels: list[tuple[str, str, str]], **options: Any) -> DaemonProcess:
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=database_url, channels=channels, **options)
    return DaemonProcess(config, log=tmp_path / "daemon.log").start()


def kinds(messages: list[Received]) -> list[str]:
    return [m.title for m in messages]


def answer_once_with(sim: Simulator, phone: str, status: str, *, polls: int = 1) -> None:
    """The next ``polls`` polls see ``phone`` at ``status``; the fleet itself stays as it is.

    A blip of an exact number of polls, whatever the timing of the polls around it.
    """
    items = sim.lines()
    for item in items:
        if item["phone_number"] == phone:
            item["reputation"]["status"] = status
    sim.queue_raw(json.dumps({"phone_numbers": items}), times=polls)


def test_two_hundred_lines_degrading_in_one_poll_are_one_message_per_channel(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    ids = sim.add_lines(300)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK"),
                             ("pager", receiver.url("pager"), "CRITICAL")],
                   channel_options='group_wait = "2s"\ngroup_limit = 10')
    try:
        daemon.wait_for_polls(1)
        sim.set_many({**dict.fromkeys(ids[:150], "AT_RISK"),
                      **dict.fromkeys(ids[150:200], "CRITICAL")})
        (ops,) = receiver.wait_for(1, path="ops")
        (pager,) = receiver.wait_for(1, path="pager")
        # Let the next polls and delivery rounds happen, then check nothing else came.
        polls = daemon.polls("success")
        daemon.wait_for_polls(polls + 3)
        assert len(receiver.messages) == 2, kinds(receiver.messages)
        assert ops.message.splitlines()[0] == "200 lines degraded: 150 AT_RISK, 50 CRITICAL"
        assert ops.message.splitlines()[-1] == "+190 more"
        assert pager.message.splitlines()[0] == "50 lines degraded: 50 CRITICAL"
        assert "after" in ops.message and "in HEALTHY" in ops.message  # time in previous
        assert "https://" in ops.message  # each entry carries its doc_url
        print(f"\n--- grouped message as delivered ---\n{ops.title}\n{ops.message}\n")
    finally:
        daemon.stop()


def test_confirm_and_recover_polls_let_blips_pass_and_alert_what_holds(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    phone = "+12025550181"
    sim.add_line(phone)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   extra_alerts="confirm_polls = 2\nrecover_polls = 3")
    try:
        daemon.wait_for_polls(1)
        # AT_RISK for one poll: below confirm_polls, so nothing is sent or recorded.
        requests = sim.request_count
        answer_once_with(sim, phone, "AT_RISK")
        daemon.wait_for_polls(daemon.polls("success") + 3)
        assert sim.request_count >= requests + 3 and receiver.messages == []
        history = json.loads(cli("history", "--config", str(daemon.config), phone,
                                 "--json").stdout)
        assert [row["to_status"] for row in history] == ["HEALTHY"]  # first seen, nothing since

        # Seen, a failed poll, seen again: the failed poll neither confirms nor resets, so
        # the second sighting alerts. Then HEALTHY for two polls, below recover_polls = 3,
        # then AT_RISK for good (the fleet itself, answered once the queue is used up).
        served, errors = sim.served_count, daemon.polls("error")
        answer_once_with(sim, phone, "AT_RISK")
        sim.queue_error(401)
        answer_once_with(sim, phone, "AT_RISK")
        answer_once_with(sim, phone, "HEALTHY", polls=2)
        # AT_RISK for good: eight queued answers first, so that the fleet is first served
        # ten polls after the alert is due: a thread slowed by a loaded machine still sees
        # the alert before any fleet answer.
        answer_once_with(sim, phone, "AT_RISK", polls=8)
        sim.set_status(phone, "AT_RISK")
        (degraded,) = receiver.wait_for(1, timeout=30)
        assert sim.served_count == served  # alerted on the queued answers, before the fleet's
        assert daemon.polls("error") == errors + 1
        assert "HEALTHY → AT_RISK" in degraded.message
        wait_until(lambda: sim.served_count >= served + 2, what="the fleet answered twice")
        daemon.wait_for_polls(daemon.polls("success") + 1)
        assert len(receiver.messages) == 1, kinds(receiver.messages)  # no recovery

        served = sim.served_count
        sim.set_status(phone, "HEALTHY")
        recovered = receiver.wait_for(2, timeout=30)[1]
        assert sim.served_count >= served + 3
        assert "recovered" in recovered.title and "AT_RISK → HEALTHY" in recovered.message
        daemon.wait_for_polls(daemon.polls("success") + 2)
        assert len(receiver.messages) == 2, kinds(receiver.messages)
    finally:
        daemon.stop()


def test_labels_route_a_line_to_its_team_in_that_channels_template_and_the_pager_escalates(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    desk, other = "+12025550301", "+12025550302"
    sim.add_line(desk)
    sim.add_line(other)
    channels = f"""
[[alerts.channels]]
name = "sales"
url = "{receiver.url("sales")}"
min_status = "AT_RISK"
labels = {{ team = "sales" }}
group_wait = "0s"
title_template = "{{{{ entry.name }}}} ({{{{ entry.labels.team }}}}): {{{{ entry.change }}}}"
body_template = "{{{{ entry.phone_number }}}} {{{{ entry.change }}}} {{{{ entry.doc_url }}}}"

[[alerts.channels]]
name = "pager"
url = "{receiver.url("pager")}"
min_status = "CRITICAL"
escalate_after = "4s"
group_wait = "0s"

[[lines]]
match = "{desk}"
name = "Front desk"
labels = {{ team = "sales" }}
"""
    daemon = start(tmp_path, sim_server, database_url, channels=[],
                   extra_alerts='policy_interval = "250ms"', extra=channels)
    try:
        daemon.wait_for_polls(1)
        sim.set_many({desk: "AT_RISK", other: "AT_RISK"})
        (sales,) = receiver.wait_for(1, path="sales", timeout=30)
        # Only the labelled line, in the channel's own words, with its name and doc_url.
        assert sales.title == "Front desk (sales): HEALTHY → AT_RISK"
        assert sales.message.startswith(f"{desk} HEALTHY → AT_RISK https://")

        # Both go CRITICAL; the desk is back to AT_RISK after one poll, the other stays.
        critical_at = time.monotonic()
        answer_once_with(sim, desk, "CRITICAL")
        sim.set_status(other, "CRITICAL")
        (page,) = receiver.wait_for(1, path="pager", timeout=30)
        assert other in page.title and "Escalated: at or above CRITICAL for" in page.message
        assert page.at - critical_at >= 4.0  # not before it lasted escalate_after
        daemon.wait_for_polls(daemon.polls("success") + 3)
        pages = [m for m in receiver.messages if m.path == "/pager"]
        assert len(pages) == 1, kinds(pages)  # the desk's short CRITICAL never paged
        assert all(desk in m.title or desk in m.message or "Front desk" in m.title
                   for m in receiver.messages if m.path == "/sales")
        assert not any(other in m.title + m.message
                       for m in receiver.messages if m.path == "/sales")
    finally:
        daemon.stop()


def test_a_flapping_line_gets_one_flapping_notice_then_one_settled_notice(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    phone = "+12025550177"
    sim.add_line(phone)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   extra_alerts='flap_changes = 3\nflap_window = "6s"\npolicy_interval = "500ms"')
    try:
        daemon.wait_for_polls(1)
        for status in ("AT_RISK", "HEALTHY", "AT_RISK", "HEALTHY", "AT_RISK", "HEALTHY",
                       "AT_RISK"):
            polls = daemon.polls("success")
            sim.set_status(phone, status)
            daemon.wait_for_polls(polls + 1)
        # Three changes alerted one by one; the fourth tips it over: one flapping notice,
        # then nothing per change; once stable for 6s, one notice of where it settled.
        messages = receiver.wait_for(4, timeout=60)
        assert ["degraded" in messages[0].title, "recovered" in messages[1].title,
                "degraded" in messages[2].title, "flapping" in messages[3].title] == [True] * 4
        flapping = messages[3]
        assert "Flapping: 4 changes in" in flapping.message and phone in flapping.title
        assert "paused until it is stable for 6s" in flapping.message
        assert daemon.value("linq_reputation_line_flapping", phone_number=phone) == 1
        settled = receiver.wait_for(5, timeout=60)[-1]
        assert "settled" in settled.title and "AT_RISK" in settled.title
        assert len(receiver.messages) == 5
        assert daemon.value("linq_reputation_line_flapping", phone_number=phone) is None
        print(f"\n--- flapping notice as delivered ---\n{flapping.title}\n{flapping.message}\n"
              f"--- settled notice ---\n{settled.title}\n{settled.message}\n")
    finally:
        daemon.stop()


def test_reminders_survive_a_restart_without_a_storm_and_without_a_gap(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    phone = "+12025550188"
    sim.add_line(phone)
    options: dict[str, Any] = dict(channel_options='group_wait = "0s"\nrepeat_interval = "6s"',
                                   extra_alerts='policy_interval = "250ms"')
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")], **options)
    try:
        daemon.wait_for_polls(1)
        sim.set_status(phone, "AT_RISK")
        receiver.wait_for(2, timeout=30)  # the alert, then the first reminder
        # Kill once both are recorded as delivered: a kill between the send and that record
        # is the documented crash-in-flight window (the claim must expire first), not this test.
        wait_until(lambda: (daemon.value("linq_reputation_notifications_total", channel="ops",
                                         outcome="delivered") or 0) >= 2, timeout=10)
        daemon.kill9()
        down_from = len(receiver.messages)
        # Down for more than two intervals: on restart, one overdue reminder, not three.
        _wait_out(seconds=14.0)
        daemon.start()
        up_at = time.monotonic()  # answering /healthz: from here it reads its database
        after = receiver.wait_for(down_from + 2, timeout=40)[down_from:]
        assert all("still AT_RISK" in m.title for m in after)
        # The overdue one came before a fresh interval could pass (none skipped) ...
        assert after[0].at - up_at < 6.0
        # ... and the next one a whole interval after it (no storm of missed ones).
        assert after[1].at - after[0].at >= 5.5
    finally:
        daemon.stop()


def _wait_out(*, seconds: float) -> float:
    """Let wall-clock time pass while the daemon is down (the thing under test is time)."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, timeout=seconds + 5)
    return time.monotonic()


def test_quiet_hours_defer_to_one_summary_skip_recovered_lines_and_survive_a_restart(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    stays, recovers, critical = "+12025550191", "+12025550192", "+12025550193"
    for phone in (stays, recovers, critical):
        sim.add_line(phone)
    now = datetime.now(UTC)
    start_at = (now - timedelta(minutes=1)).strftime("%H:%M:%S")
    end_at = (now + timedelta(seconds=25)).strftime("%H:%M:%S")
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   channel_options=f'group_wait = "0s"\nquiet_hours = "{start_at}-{end_at}"')
    try:
        daemon.wait_for_polls(1)
        sim.set_many({stays: "AT_RISK", recovers: "AT_RISK", critical: "CRITICAL"})
        (urgent,) = receiver.wait_for(1, timeout=30)  # CRITICAL passes through quiet hours
        assert critical in urgent.title
        polls = daemon.polls("success")
        daemon.wait_for_polls(polls + 1)
        sim.set_status(recovers, "HEALTHY")
        daemon.wait_for_polls(polls + 3)
        daemon.kill9()  # deferred notices are in the database, not in memory
        daemon.start()
        summary = receiver.wait_for(2, timeout=90)[1]
        assert stays in summary.message or stays in summary.title
        assert summary.message.startswith("Held back during this channel's quiet hours")
        assert recovers not in summary.message + summary.title  # went and came back
        daemon.wait_for_polls(daemon.polls("success") + 2)
        assert len(receiver.messages) == 2, kinds(receiver.messages)
    finally:
        daemon.stop()


def test_an_account_failing_for_stale_after_is_announced_once_and_cleared_once(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    sim.add_line("+12025550199")
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   extra_alerts='stale_after = "3s"\npolicy_interval = "250ms"')
    try:
        daemon.wait_for_polls(1)
        sim.set_token("a-token-the-monitor-does-not-have")  # every poll now fails (401)
        (trouble,) = receiver.wait_for(1, timeout=30)
        assert "polls of account main failing" in trouble.title, trouble.title
        errors = daemon.polls("error")
        daemon.wait_for_polls(errors + 3, outcome="error")
        assert len(receiver.messages) == 1  # announced once, not once per tick
        sim.set_token(TOKEN)
        cleared = receiver.wait_for(2, timeout=30)[1]
        assert cleared.title.startswith("[RESOLVED]")
    finally:
        daemon.stop()


def test_the_daily_digest_is_delivered_at_its_time_of_day_once(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    degraded, healthy = "+12025550155", "+12025550156"
    sim.add_line(degraded)
    sim.add_line(healthy)
    # A time of day (to the second) that leaves the daemon time to start and poll twice.
    due = datetime.now(UTC) + timedelta(seconds=25)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "CRITICAL")],
                   channel_options=f'group_wait = "0s"\ndigest = "{due:%H:%M:%S}"')
    try:
        daemon.wait_for_polls(1)
        sim.set_status(degraded, "AT_RISK")  # below the channel's min_status: no alert
        daemon.wait_for_polls(daemon.polls("success") + 2)
        (digest,) = receiver.wait_for(1, timeout=60)
        assert "digest" in digest.title.lower()
        assert degraded in digest.message and "AT_RISK" in digest.message
        assert "HEALTHY → AT_RISK" in digest.message  # the change in the last 24 h
        daemon.wait_for_polls(daemon.polls("success") + 2)
        assert len(receiver.messages) == 1
        print(f"\n--- digest as delivered ---\n{digest.title}\n{digest.message}\n")
    finally:
        daemon.stop()


def test_a_silence_records_instead_of_sending_and_its_end_speaks_once_across_restarts(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    quiet, loud, blip = "+12025550161", "+12025550162", "+12025550163"
    for phone in (quiet, loud, blip):
        sim.add_line(phone)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   extra_alerts='policy_interval = "250ms"')
    config = str(daemon.config)
    try:
        daemon.wait_for_polls(1)
        added = cli("silence", "add", "--config", config, "--line", quiet, "--for", "1h",
                    "--reason", "carrier maintenance", "--by", "alice")
        assert added.returncode == 0, added.stderr
        silence_id = re.search(r"\d+", added.stdout).group(0)  # type: ignore[union-attr]
        short = cli("silence", "add", "--config", config, "--line", blip, "--for", "1h",
                    "--reason", "flaky", "--by", "alice")
        assert short.returncode == 0, short.stderr
        # The daemon re-reads silences every policy round; one poll later they are in force.
        polls = daemon.polls("success")
        daemon.wait_for_polls(polls + 2)
        sim.set_many({quiet: "AT_RISK", loud: "AT_RISK", blip: "AT_RISK"})
        (alert,) = receiver.wait_for(1)
        assert loud in alert.title
        # Paged about, then silenced (to stop hearing of it); it recovers during the silence.
        after_page = cli("silence", "add", "--config", config, "--line", loud, "--for", "1h",
                         "--reason", "known", "--by", "bob")
        assert after_page.returncode == 0, after_page.stderr
        daemon.wait_for_polls(daemon.polls("success") + 2)
        sim.set_many({blip: "HEALTHY", loud: "HEALTHY"})  # blip went and came back
        daemon.wait_for_polls(daemon.polls("success") + 3)
        assert len(receiver.messages) == 1
        rows = json.loads(cli("history", "--config", config, quiet, "--json").stdout)
        assert rows[0]["alerts"] == [{"channel": "ops", "state": "silenced"}]

        daemon.kill9()
        daemon.start()  # the silence and what it held back are in the database
        daemon.wait_for_polls(daemon.polls("success") + 2)
        assert len(receiver.messages) == 1
        expired = cli("silence", "expire", "--config", config, silence_id)
        assert expired.returncode == 0, expired.stderr
        (_, ended) = receiver.wait_for(2, timeout=30)
        assert quiet in ended.title and "silence" in ended.message.lower()
        cli("silence", "expire", "--config", config, re.search(
            r"\d+", short.stdout).group(0))  # type: ignore[union-attr]
        daemon.kill9()
        daemon.start()
        daemon.wait_for_polls(daemon.polls("success") + 3)
        assert len(receiver.messages) == 2  # not re-announced after a restart; blip: nothing
        # The page about `loud` is closed once its silence ends: the recovery it missed.
        cli("silence", "expire", "--config", config, re.search(
            r"\d+", after_page.stdout).group(0))  # type: ignore[union-attr]
        recovered = receiver.wait_for(3, timeout=30)[2]
        assert loud in recovered.title and "recovered" in recovered.title
        assert "recovered during a silence" in recovered.message
        daemon.wait_for_polls(daemon.polls("success") + 3)
        assert len(receiver.messages) == 3
    finally:
        daemon.stop()


def test_a_channel_whose_deliveries_give_up_is_announced_once_on_the_other_channels(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    phone = "+12025550171"
    sim.add_line(phone)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK"),
                             ("broken", receiver.url("broken"), "AT_RISK")],
                   extra_alerts='give_up_after = "2s"\npolicy_interval = "250ms"',
                   retry_initial="200ms", retry_max="500ms")
    try:
        daemon.wait_for_polls(1)
        receiver.fail_path("broken")
        sim.set_status(phone, "AT_RISK")
        receiver.wait_for(1, path="ops")  # the alert itself, on the working channel
        trouble = receiver.wait_for(2, path="ops", timeout=60)[1]
        assert "broken" in trouble.title and "[MONITOR]" in trouble.title
        daemon.wait_for_polls(daemon.polls("success") + 3)
        assert len([m for m in receiver.messages if m.path == "/ops"]) == 2  # once
    finally:
        daemon.stop()
