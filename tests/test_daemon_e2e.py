"""The daemon end to end: ``reputation-monitor run`` as a subprocess against the simulator on a
real socket, alerts received through Apprise's real ``json://`` notifier, /metrics scraped and
parsed, kill -9 and restart on the same database.

Nothing here sleeps a guessed amount: tests wait for messages at the receiver, or for a state
the daemon exposes (/metrics, ``status --json``) with a deadline.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.core.status import recommended_action
from monitor.simulator import SimResponse, Simulator, SimulatorServer
from tests.support.daemon import (
    TOKEN,
    DaemonProcess,
    cli,
    sample_value,
    wait_until,
    write_config,
)
from tests.support.receiver import Received, Receiver

pytestmark = pytest.mark.timeout(120)

GUIDE = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"
LINE_A = "+12025550101"
LINE_B = "+12025550102"
LINE_C = "+12025550103"
KNOWN = ("HEALTHY", "AT_RISK", "CRITICAL")


def start(tmp_path: Path, sim_server: SimulatorServer, database_url: str, *,
          channels: list[tuple[str, str, str]], **options: Any) -> DaemonProcess:
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=database_url, channels=channels, **options)
    return DaemonProcess(config, log=tmp_path / "daemon.log").start()


def text_of(message: Received) -> str:
    return f"{message.title}\n{message.message}"


def urls_in(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


def changed_at(message: Received) -> datetime:
    found = re.search(r"Changed at:\s*(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)", message.message)
    assert found, f"no 'Changed at' time in:\n{message.message}"
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)


_CHANGE = re.compile(r"(\+\d+)[^:\n]*: (\S+) → (\S+)")


def changes_in(messages: list[Received]) -> list[tuple[str, str, str]]:
    """(phone, from, to) of every line entry, from single and grouped messages alike."""
    found: list[tuple[str, str, str]] = []
    for m in messages:
        entries = [line for line in m.message.splitlines() if line.startswith("- +")]
        for text in entries or [m.title]:
            match = _CHANGE.search(text)
            if match:
                found.append((match.group(1), match.group(2), match.group(3)))
    return found


def about(messages: list[Received], phone: str) -> list[Received]:
    return [m for m in messages if phone in text_of(m)]


def status_json(config: Path, *extra: str) -> dict[str, Any]:
    result = cli("status", "--config", str(config), "--json", *extra)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def history_json(config: Path, line: str) -> list[dict[str, Any]]:
    result = cli("history", "--config", str(config), line, "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def line_samples(daemon: DaemonProcess, line_id: str) -> list[Any]:
    return [s for s in daemon.samples() if s.labels.get("line_id") == line_id]


def record_replies(sim: Simulator) -> list[SimResponse]:
    """Keep every answer the fake API gives (to know the X-Trace-IDs it sent)."""
    replies: list[SimResponse] = []
    respond = sim.respond

    def recording(authorization: str | None) -> SimResponse:
        reply = respond(authorization)
        replies.append(reply)
        return reply

    sim.respond = recording  # type: ignore[method-assign]
    return replies


# -- 1. a line's whole life, one message per change --------------------------------------------

@pytest.mark.both_databases  # the one end-to-end path run on both databases
def test_it_alerts_each_change_of_a_line_once_with_what_to_do_and_the_doc_url(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        story = [
            ("AT_RISK", f"{GUIDE}?from=e2e&step=1#at-risk-7f3a"),
            ("CRITICAL", f"{GUIDE}?from=e2e&step=2#critical-9c1e"),
            ("HEALTHY", f"{GUIDE}?from=e2e&step=3#healthy-2b8d"),
        ]
        previous = "HEALTHY"
        for count, (status, doc_url) in enumerate(story, start=1):
            before = datetime.now(UTC).replace(microsecond=0)
            sim.set_status(LINE_A, status, doc_url=doc_url)
            message = receiver.wait_for(count, path="ops")[-1]
            after = datetime.now(UTC)

            text = text_of(message)
            assert re.search(r"\bmain\b", text), text
            assert LINE_A in text
            assert f"{previous} → {status}" in text
            assert before <= changed_at(message) <= after
            assert recommended_action(status) in message.message
            assert doc_url in urls_in(text), text
            previous = status

        daemon.settle()
        titles = [m.title for m in receiver.messages]
        assert len(titles) == 3, titles
        assert "HEALTHY" in titles[-1] and "CRITICAL" in titles[-1]
    finally:
        daemon.stop()


# -- 2. routing by min_status; recoveries to whoever heard the degradation ---------------------

def test_it_routes_by_min_status_and_sends_recoveries_to_the_channels_that_were_told(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    sim.add_line(LINE_B)
    daemon = start(tmp_path, sim_server, database_url, channels=[
        ("ops", receiver.url("ops"), "AT_RISK"),
        ("pager", receiver.url("pager"), "CRITICAL"),
    ])
    try:
        daemon.wait_for_polls(1)
        # Changes seen by one poll reach a channel as one (grouped) message.
        sim.set_many({LINE_A: "AT_RISK", LINE_B: "AT_RISK"})
        receiver.wait_for(1, path="ops")
        sim.set_many({LINE_A: "CRITICAL", LINE_B: "HEALTHY"})
        receiver.wait_for(2, path="ops")
        receiver.wait_for(1, path="pager")
        sim.set_status(LINE_A, "HEALTHY")
        receiver.wait_for(3, path="ops")
        receiver.wait_for(2, path="pager")
        daemon.settle()

        ops = [m for m in receiver.messages if m.path == "/ops"]
        pager = [m for m in receiver.messages if m.path == "/pager"]
        assert len(ops) == 3, [m.title for m in ops]
        assert ops[0].message.splitlines()[0] == "2 lines degraded: 2 AT_RISK"
        assert ops[1].message.splitlines()[0] == "1 line degraded: 1 CRITICAL; 1 recovered"
        assert LINE_A in ops[1].message and LINE_B in ops[1].message
        assert "→ HEALTHY" in ops[2].title and LINE_A in ops[2].title
        # The pager heard only LINE_A's CRITICAL episode: its start and its end.
        assert len(pager) == 2, [m.title for m in pager]
        assert "→ CRITICAL" in pager[0].title and "→ HEALTHY" in pager[1].title
        assert about(pager, LINE_B) == []
    finally:
        daemon.stop()


# -- 3. first sight ----------------------------------------------------------------------------

def test_it_alerts_a_line_first_seen_critical_once_and_stays_quiet_about_healthy_ones(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    sim.add_line(LINE_A, status="CRITICAL")
    sim.add_line(LINE_B, status="HEALTHY")
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        receiver.wait_for(1, path="ops")
        daemon.settle(3)
        assert len(receiver.messages) == 1
        assert LINE_A in text_of(receiver.messages[0])
        assert "CRITICAL" in receiver.messages[0].title
        assert about(receiver.messages, LINE_B) == []
    finally:
        daemon.stop()


# -- 4. /metrics -------------------------------------------------------------------------------

def test_it_exposes_every_line_and_drops_a_removed_one_from_metrics_and_status(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    lines = {
        sim.add_line(LINE_A, status="AT_RISK"): (LINE_A, "AT_RISK"),
        sim.add_line(LINE_B, status="HEALTHY"): (LINE_B, "HEALTHY"),
        sim.add_line(LINE_C, status="CRITICAL"): (LINE_C, "CRITICAL"),
    }
    id_of = {phone: line_id for line_id, (phone, _) in lines.items()}
    started = datetime.now(UTC).timestamp()
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        receiver.wait_for(1, path="ops")  # both first sightings, grouped
        daemon.settle()
        samples = daemon.samples()  # parses, or raises
        for line_id, (phone, status) in lines.items():
            labels = {"account": "main", "line_id": line_id, "phone_number": phone}
            state_set = {s.labels["status"]: s.value for s in samples
                         if s.name == "linq_reputation_line_status"
                         and s.labels["line_id"] == line_id}
            assert state_set == {k: (1.0 if k == status else 0.0) for k in KNOWN}
            assert sample_value(samples, "linq_reputation_line_status",
                                status=status, **labels) == 1
            assert sample_value(samples, "linq_reputation_line_severity",
                                **labels) == KNOWN.index(status)
            since = sample_value(samples, "linq_reputation_line_status_since_timestamp_seconds",
                                 **labels)
            assert since is not None and started - 1 <= since <= datetime.now(UTC).timestamp()
        for status in KNOWN:
            assert sample_value(samples, "linq_reputation_lines",
                                account="main", status=status) == 1
        assert sample_value(samples, "linq_reputation_polls_total",
                            account="main", outcome="success") >= 1  # type: ignore[operator]
        assert sample_value(samples, "linq_reputation_up", account="main") == 1
        assert sample_value(samples, "linq_reputation_notifications_total",
                            channel="ops", outcome="delivered") == 2
        assert sample_value(samples, "linq_reputation_notifications_pending") == 0

        b_since = sample_value(samples, "linq_reputation_line_status_since_timestamp_seconds",
                               line_id=id_of[LINE_B])
        sim.set_status(LINE_B, "AT_RISK")
        receiver.wait_for(2, path="ops")
        wait_until(lambda: daemon.value("linq_reputation_notifications_total",
                                        channel="ops", outcome="delivered") == 3,
                   what="the third delivery to be counted")
        samples = daemon.samples()
        assert sample_value(samples, "linq_reputation_line_severity",
                            line_id=id_of[LINE_B]) == 1
        assert sample_value(samples, "linq_reputation_line_status_since_timestamp_seconds",
                            line_id=id_of[LINE_B]) > b_since  # type: ignore[operator]
        assert sample_value(samples, "linq_reputation_transitions_total", account="main",
                            from_status="HEALTHY", to_status="AT_RISK") == 1
        assert sample_value(samples, "linq_reputation_lines", account="main",
                            status="AT_RISK") == 2
        assert sample_value(samples, "linq_reputation_lines", account="main",
                            status="HEALTHY") == 0

        sim.remove_line(LINE_C)
        wait_until(lambda: line_samples(daemon, id_of[LINE_C]) == [],
                   what="the removed line's series to disappear")
        samples = daemon.samples()
        assert not any(LINE_C in s.labels.values() for s in samples)
        assert line_samples(daemon, id_of[LINE_A]) != []
        assert sample_value(samples, "linq_reputation_lines", account="main",
                            status="CRITICAL") == 0

        current = status_json(daemon.config)
        assert {line["phone_number"] for line in current["lines"]} == {LINE_A, LINE_B}
        everything = status_json(daemon.config, "--all")
        removed = [line for line in everything["lines"] if line["phone_number"] == LINE_C]
        assert len(removed) == 1 and removed[0]["present"] is False
        assert history_json(daemon.config, LINE_C)[0]["kind"] == "removed"
    finally:
        daemon.stop()


# -- 5. kill -9 and restart: what changed while down is alerted once, nothing is re-sent -------

def test_it_alerts_changes_made_while_it_was_killed_once_and_resends_nothing(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    for phone in (LINE_A, LINE_B, LINE_C):
        sim.add_line(phone)
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        sim.set_many({LINE_A: "AT_RISK", LINE_B: "CRITICAL"})
        receiver.wait_for(1, path="ops")  # one poll's changes: one grouped message
        # Delivered means recorded as delivered, not merely received.
        wait_until(lambda: daemon.value("linq_reputation_notifications_total",
                                        channel="ops", outcome="delivered") == 2,
                   what="both deliveries to be recorded")
        daemon.kill9()

        sim.set_many({LINE_A: "CRITICAL", LINE_B: "HEALTHY", LINE_C: "AT_RISK"})
        daemon.start()
        receiver.wait_for(2, path="ops")
        daemon.settle(3)
    finally:
        daemon.stop()

    changes = changes_in(receiver.messages)
    assert all(n == 1 for n in Counter(changes).values()), changes
    assert sorted(changes) == [
        (LINE_A, "AT_RISK", "CRITICAL"), (LINE_A, "HEALTHY", "AT_RISK"),
        (LINE_B, "CRITICAL", "HEALTHY"), (LINE_B, "HEALTHY", "CRITICAL"),
        (LINE_C, "HEALTHY", "AT_RISK")]
    # The recovery reached the channel told before the kill: who was told survives a restart.
    assert len(receiver.messages) == 2


# -- 6. kill -9 with notifications pending ----------------------------------------------------

def test_it_delivers_every_pending_notification_once_after_a_kill_9(
    tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    sim.add_line(LINE_B)
    # A long backoff keeps the channel paused after its first failure: the kill lands
    # between attempts, not in the middle of one.
    daemon = start(tmp_path, sim_server, database_url,
                   channels=[("ops", receiver.url("ops"), "AT_RISK")],
                   retry_initial="3s", retry_max="3s")
    try:
        daemon.wait_for_polls(1)
        receiver.set_status(500)
        sim.set_many({LINE_A: "AT_RISK", LINE_B: "CRITICAL"})
        wait_until(lambda: daemon.value("linq_reputation_notifications_pending") == 2
                   and (daemon.value("linq_reputation_notifications_total",
                                     channel="ops", outcome="failed") or 0) >= 1,
                   what="two notifications pending after a failed attempt")
        daemon.kill9()
        assert receiver.messages == []

        receiver.set_status(200)
        daemon.start()
        receiver.wait_for(1, path="ops")
        daemon.settle(2)
    finally:
        daemon.stop()

    # Both pending notices, once each (in one grouped message: they were due together).
    assert sorted(changes_in(receiver.messages)) == [(LINE_A, "HEALTHY", "AT_RISK"),
                                                     (LINE_B, "HEALTHY", "CRITICAL")]


# -- 7. signals --------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_exits_0_and_says_it_is_shutting_down_on_a_signal_even_mid_poll(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, sig: signal.Signals,
) -> None:
    sim.add_line(LINE_A)
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}", channels=[])
    try:
        daemon.wait_for_polls(1)
        requests = sim.request_count
        sim.queue_delay(60)  # the next poll hangs: the signal must not wait for it
        wait_until(lambda: sim.request_count > requests, what="a poll to be in flight")
        assert daemon.send_signal(sig, timeout=15) == 0
    finally:
        daemon.stop()
    assert "shutting down" in daemon.log().lower()


def test_it_finishes_and_records_the_notification_in_hand_when_told_to_stop(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    receiver.hold()
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        sim.set_status(LINE_A, "CRITICAL")
        assert receiver.arrived.wait(20), "the notification was never sent"
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in daemon.log().lower(),
                   what="the daemon to start shutting down")
        receiver.release()
        assert daemon.wait(timeout=20) == 0
    finally:
        daemon.stop()

    assert len(receiver.messages) == 1
    # The channel has the message: recorded as anything but delivered, a restart sends it again.
    assert status_json(daemon.config)["notifications"] == {"delivered": 1}


# -- 8. failed polls ---------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["token_rejected", "server_error_beyond_retries",
                                     "not_json"])
def test_it_changes_nothing_on_a_failed_poll_and_catches_up_on_the_next_good_one(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
    failure: str,
) -> None:
    line_a = sim.add_line(LINE_A)
    line_b = sim.add_line(LINE_B)
    replies = record_replies(sim)
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        errors = daemon.polls("error")
        raw = b"<html>502 Bad Gateway</html>"
        if failure == "token_rejected":
            sim.set_token("rotated-elsewhere")
        elif failure == "server_error_beyond_retries":
            sim.queue_error(500, times=6)  # two polls of three attempts each
        else:
            sim.queue_raw(raw, times=3)
        sim.set_status(LINE_B, "CRITICAL")  # hidden behind the failure

        daemon.wait_for_polls(errors + 1, outcome="error")
        samples = daemon.samples()
        assert sample_value(samples, "linq_reputation_up", account="main") == 0
        assert sample_value(samples, "linq_reputation_line_severity", line_id=line_a) == 0
        assert sample_value(samples, "linq_reputation_line_severity", line_id=line_b) == 0
        assert sample_value(samples, "linq_reputation_lines", account="main",
                            status="HEALTHY") == 2
        assert receiver.messages == []
        if failure == "token_rejected":
            statuses = {line["phone_number"]: line["status"]
                        for line in status_json(daemon.config)["lines"]}
            assert statuses == {LINE_A: "HEALTHY", LINE_B: "HEALTHY"}
            sim.set_token(TOKEN)

        message = receiver.wait_for(1, path="ops")[0]
        assert LINE_B in message.title and "HEALTHY → CRITICAL" in message.title
        daemon.settle()
        assert len(receiver.messages) == 1
        assert daemon.value("linq_reputation_up", account="main") == 1
        assert daemon.value("linq_reputation_line_severity", line_id=line_b) == 2
    finally:
        daemon.stop()

    kinds = [row["kind"] for row in history_json(daemon.config, LINE_A)]
    assert kinds == ["first_seen"]
    log = daemon.log()
    failed_traces = [r.headers["X-Trace-ID"] for r in replies
                     if r.status != 200 or r.body == raw]
    assert failed_traces
    assert any(trace in log for trace in failed_traces), log
    if failure == "token_rejected":
        assert re.search(r"rejected the token|token (was )?rejected", log), log
    assert TOKEN not in log


# -- 9. an undocumented status -----------------------------------------------------------------

def test_it_keeps_shows_exposes_and_alerts_an_unknown_status_once(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    line_a = sim.add_line(LINE_A)
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        sim.set_status(LINE_A, "FLAGGED", doc_url=f"{GUIDE}#flagged-e2e")
        message = receiver.wait_for(1, path="ops")[0]
        assert "FLAGGED" in message.title
        assert f"{GUIDE}#flagged-e2e" in urls_in(message.message)
        daemon.settle(3)
        assert len(receiver.messages) == 1

        samples = daemon.samples()
        assert sample_value(samples, "linq_reputation_line_severity", line_id=line_a) == 3
        state_set = {s.labels["status"]: s.value for s in samples
                     if s.name == "linq_reputation_line_status"
                     and s.labels["line_id"] == line_a}
        assert state_set == {"HEALTHY": 0, "AT_RISK": 0, "CRITICAL": 0, "FLAGGED": 1}
        assert sample_value(samples, "linq_reputation_lines", account="main",
                            status="FLAGGED") == 1
        assert sample_value(samples, "linq_reputation_transitions_total", account="main",
                            from_status="HEALTHY", to_status="FLAGGED") == 1

        [line] = status_json(daemon.config)["lines"]
        assert line["status"] == "FLAGGED"
        table = cli("status", "--config", str(daemon.config))
        assert re.search(rf"{re.escape(LINE_A)}.*FLAGGED", table.stdout), table.stdout
    finally:
        daemon.stop()


# -- 10. a channel that is down, then back -----------------------------------------------------

def test_it_retries_a_failed_notification_until_the_channel_is_back_and_delivers_it_once(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                   channels=[("ops", receiver.url("ops"), "AT_RISK")])
    try:
        daemon.wait_for_polls(1)
        receiver.set_status(500)
        sim.set_status(LINE_A, "CRITICAL")
        receiver.wait_for_attempts(2)
        assert receiver.messages == []
        receiver.set_status(200)
        receiver.wait_for(1, path="ops")
        daemon.settle()
        assert len(receiver.messages) == 1
        assert receiver.attempts >= 3
        assert LINE_A in receiver.messages[0].title
        assert (daemon.value("linq_reputation_notifications_total", channel="ops",
                             outcome="failed") or 0) >= 2
        assert daemon.value("linq_reputation_notifications_total", channel="ops",
                            outcome="delivered") == 1
    finally:
        daemon.stop()



# -- a hanging channel delays only itself ------------------------------------------------------

def test_a_hanging_channel_does_not_hold_up_the_others(
    tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver,
) -> None:
    sim.add_line(LINE_A)
    with Receiver() as hanging:
        hanging.hold()
        daemon = start(tmp_path, sim_server, f"sqlite:///{tmp_path / 'monitor.db'}",
                       channels=[("slow", hanging.url("slow"), "AT_RISK"),
                                 ("ops", receiver.url("ops"), "AT_RISK")],
                       extra_alerts='delivery_timeout = "60s"')
        try:
            daemon.wait_for_polls(1)
            sim.set_status(LINE_A, "AT_RISK")
            assert hanging.arrived.wait(20), "the slow channel was never tried"
            sim.set_status(LINE_A, "CRITICAL")
            # Both changes reach ops while the slow channel is still stuck on the first.
            titles = [m.title for m in receiver.wait_for(2, path="ops", timeout=15)]
            assert "HEALTHY → AT_RISK" in titles[0] and "AT_RISK → CRITICAL" in titles[1]
            assert hanging.messages == []
            hanging.release()
            assert len(hanging.wait_for(2, path="slow", timeout=20)) == 2
        finally:
            daemon.stop()
