"""Silences: matching and time windows (pure), storage on SQLite and PostgreSQL, and the
``silence add|list|expire`` commands run as a user runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import LineKey
from monitor.core.silence import MatcherKind, Silence, parse_label_matcher, silenced_by
from monitor.errors import UsageError
from monitor.simulator import Simulator, SimulatorServer
from monitor.store.silences import add_silence, expire_silence, list_silences, load_silences
from tests.support.daemon import cli, write_config
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PHONE, LINE_ID = "+14155550100", "line-100"
SALES = {"team": "sales"}


LINE = LineKey("main", LINE_ID, PHONE)

def silence(kind: MatcherKind, value: str, *, id: int = 1, start: timedelta = timedelta(0),
            length: timedelta = timedelta(hours=4), expired: timedelta | None = None
            ) -> Silence:
    return Silence(id=id, kind=kind, value=value, reason="maintenance", created_by="alice",
                   created_at=NOW, starts_at=NOW + start, ends_at=NOW + start + length,
                   expired_at=None if expired is None else NOW + expired)


# -- pure --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "value", "matches"), [
    (MatcherKind.LINE, PHONE, True),
    (MatcherKind.LINE, LINE_ID, True),
    (MatcherKind.LINE, "+14155550101", False),
    (MatcherKind.LABEL, "team=sales", True),
    (MatcherKind.LABEL, "team=support", False),
    (MatcherKind.LABEL, "region=sales", False),
    (MatcherKind.ACCOUNT, "main", True),
    (MatcherKind.ACCOUNT, "eu", False),
])
def test_a_silence_matches_by_line_label_or_account(kind: MatcherKind, value: str,
                                                     matches: bool) -> None:
    assert silence(kind, value).matches(LINE, SALES) is matches


def test_a_silence_is_active_from_its_start_until_it_ends_or_is_expired() -> None:
    later = silence(MatcherKind.ACCOUNT, "main", start=timedelta(hours=1))
    assert not later.active(NOW) and later.state(NOW) == "pending"
    assert later.active(NOW + timedelta(hours=1))
    assert later.active(NOW + timedelta(hours=4, minutes=59))
    assert not later.active(NOW + timedelta(hours=5))
    assert later.state(NOW + timedelta(hours=5)) == "ended"

    cut_short = silence(MatcherKind.ACCOUNT, "main", expired=timedelta(minutes=10))
    assert cut_short.active(NOW + timedelta(minutes=9))
    assert not cut_short.active(NOW + timedelta(minutes=10))
    assert cut_short.until == NOW + timedelta(minutes=10)
    assert cut_short.state(NOW + timedelta(minutes=10)) == "expired"


def test_silenced_by_names_the_longest_active_silence_covering_the_line() -> None:
    short = silence(MatcherKind.LINE, PHONE, id=1, length=timedelta(hours=1))
    long = silence(MatcherKind.LABEL, "team=sales", id=2, length=timedelta(hours=8))
    other = silence(MatcherKind.ACCOUNT, "eu", id=3, length=timedelta(days=1))
    future = silence(MatcherKind.ACCOUNT, "main", id=4, start=timedelta(hours=2),
                     length=timedelta(days=2))
    found = [short, long, other, future]
    assert silenced_by(found, LINE, SALES, NOW) == long
    assert silenced_by(found, LINE, {}, NOW) == short
    assert silenced_by(found, LINE, {}, NOW + timedelta(hours=3)) == future
    assert silenced_by(found, LineKey("main", "other", "+1999"), {}, NOW) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("team", "key=value"), ("=sales", "key=value"), ("team=", "key=value"),
    ("team-x=sales", "valid label name"),
])
def test_a_label_matcher_must_be_key_equals_value(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_label_matcher(text)


# -- store -------------------------------------------------------------------------------------

def stored(sessions: sessionmaker[Session], kind: MatcherKind, value: str, *,
           start: timedelta = timedelta(0), length: timedelta = timedelta(hours=4)) -> Silence:
    return add_silence(sessions, kind=kind, value=value, reason="carrier maintenance",
                       created_by="alice@host", starts_at=NOW + start,
                       ends_at=NOW + start + length, now=NOW)


@pytest.mark.both_databases
def test_silences_are_stored_listed_and_expired(sessions: sessionmaker[Session]) -> None:
    line = stored(sessions, MatcherKind.LINE, PHONE)
    label = stored(sessions, MatcherKind.LABEL, "team=sales", start=timedelta(hours=1))
    assert line.id != label.id

    listed = list_silences(sessions, NOW)
    assert listed == [line, label]  # read back exactly as written, in start order
    assert load_silences(sessions, NOW) == [line, label]  # the upcoming one is loaded too

    expired = expire_silence(sessions, line.id, NOW + timedelta(minutes=5), by="ada")
    assert expired.expired_at == NOW + timedelta(minutes=5)
    assert load_silences(sessions, NOW + timedelta(minutes=5)) == [label]
    assert list_silences(sessions, NOW + timedelta(minutes=5), include_expired=True) == [
        expired, label]
    assert load_silences(sessions, NOW + timedelta(hours=5)) == []  # label ran out


@pytest.mark.both_databases
def test_expiring_an_unknown_or_ended_silence_says_why(sessions: sessionmaker[Session]) -> None:
    done = stored(sessions, MatcherKind.ACCOUNT, "main", length=timedelta(minutes=30))
    with pytest.raises(UsageError, match="no silence with id 999"):
        expire_silence(sessions, 999, NOW, by="ada")
    with pytest.raises(UsageError, match=f"silence {done.id} has already ended: it ended"):
        expire_silence(sessions, done.id, NOW + timedelta(hours=1), by="ada")
    expire_silence(sessions, done.id, NOW + timedelta(minutes=1), by="ada")
    with pytest.raises(UsageError, match="it was expired at 2026-11-27 08:01:00 UTC"):
        expire_silence(sessions, done.id, NOW + timedelta(minutes=2), by="ada")


@pytest.mark.both_databases
def test_a_silence_must_end_after_it_starts(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(UsageError, match="end after it starts"):
        stored(sessions, MatcherKind.ACCOUNT, "main", length=timedelta(0))
    assert list_silences(sessions, NOW, include_expired=True) == []


# -- the command line --------------------------------------------------------------------------

def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def configured(tmp_path: Path, database_url: str, base_url: str = "http://127.0.0.1:9",
               ) -> Path:
    config = write_config(tmp_path / "config.toml", base_url=base_url,
                          database_url=database_url)
    config.write_text(config.read_text() + """
[[lines]]
match = "+1415*"
labels = { team = "sales" }
""")
    # The database as a daemon leaves it: only run, poll and db upgrade create one.
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    return config


def silence_cli(config: Path, *args: str) -> CompletedProcess[str]:
    return cli("silence", *args, "--config", str(config))


def test_add_list_and_expire_round_trip(tmp_path: Path, database_url: str) -> None:
    config = configured(tmp_path, database_url)

    added = silence_cli(config, "add", "--label", "team=sales", "--for", "4h",
                        "--reason", "carrier maintenance", "--by", "alice")
    assert added.returncode == 0, output(added)
    assert added.stdout.startswith("silence 1 added: label=team=sales until ")
    assert "(4h)" in added.stdout
    second = silence_cli(config, "add", "--account", "main", "--for", "30m",
                         "--reason", "deploy")
    assert second.returncode == 0, output(second)
    assert second.stdout.startswith("silence 2 added: account=main")

    listing = silence_cli(config, "list")
    assert listing.returncode == 0, output(listing)
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["ID", "MATCHER", "FROM", "UNTIL", "BY", "REASON", "STATE"]
    assert rows[0].split()[:2] == ["1", "label=team=sales"]
    assert "alice" in rows[0] and "carrier maintenance" in rows[0]
    # 4h less the moments since it was added, rounded: "4h" or "3h 59m ..."
    assert "active (4h left)" in rows[0] or "active (3h 59m" in rows[0], rows[0]
    assert rows[1].split()[:2] == ["2", "account=main"]
    assert "@" in rows[1]  # --by defaults to $USER@hostname

    expired = silence_cli(config, "expire", "2")
    assert expired.returncode == 0, output(expired)
    assert expired.stdout.startswith("silence 2 (account=main) expired at ")
    assert [r.split()[0] for r in silence_cli(config, "list").stdout.splitlines()[1:]] == ["1"]
    every = silence_cli(config, "list", "--all").stdout.splitlines()[1:]
    assert every[1].split()[0] == "2" and every[1].rstrip().endswith("expired")

    again = silence_cli(config, "expire", "2")
    assert again.returncode == 2
    assert "silence 2 has already ended" in again.stderr


def test_listing_with_no_silences_says_so(tmp_path: Path) -> None:
    config = configured(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = silence_cli(config, "list")
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "no active or upcoming silences"


@pytest.mark.parametrize(("args", "message"), [
    (["add", "--label", "team", "--for", "4h", "--reason", "x"],
     "argument --label: 'team' is not key=value"),
    (["add", "--label", "team=sales", "--line", PHONE, "--for", "4h", "--reason", "x"],
     "not allowed with argument"),
    (["add", "--for", "4h", "--reason", "x"], "one of the arguments --line --label --account"),
    (["add", "--line", PHONE, "--for", "0s", "--reason", "x"],
     "argument --for: must be longer than 0s"),
    (["add", "--line", PHONE, "--for", "a while", "--reason", "x"],
     "argument --for: 'a while' is not a duration"),
    (["add", "--line", PHONE, "--for", "4h", "--reason", "  "],
     "argument --reason: must not be empty"),
    (["add", "--line", PHONE, "--for", "4h"], "required: --reason"),
    (["add", "--account", "nope", "--for", "4h", "--reason", "x"],
     "--account: no account named 'nope' in the config (configured: main)"),
    (["expire", "42"], "there is no silence with id 42"),
    (["expire", "first"], "argument ID: invalid int value: 'first'"),
])
def test_bad_input_is_refused_with_exit_2_and_a_clear_message(
        tmp_path: Path, args: list[str], message: str) -> None:
    config = configured(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = silence_cli(config, *args)
    assert result.returncode == 2, output(result)
    assert message in result.stderr, output(result)
    assert "Traceback" not in output(result)
    assert "no active or upcoming" in silence_cli(config, "list").stdout  # nothing stored


def test_an_unknown_line_is_silenced_with_a_warning_and_a_known_one_without(
        tmp_path: Path, database_url: str, sim: Simulator, sim_server: SimulatorServer) -> None:
    sim.add_line(PHONE)
    config = configured(tmp_path, database_url, sim_server.url)
    assert cli("poll", "--config", str(config)).returncode == 0

    unknown = silence_cli(config, "add", "--line", "+19995550000", "--for", "1h",
                          "--reason", "porting in")
    assert unknown.returncode == 0, output(unknown)
    assert "warning: no line +19995550000 has been seen" in unknown.stderr
    known = silence_cli(config, "add", "--line", PHONE, "--for", "1h", "--reason", "noisy")
    assert known.returncode == 0, output(known)
    assert "warning" not in known.stderr
    assert len(silence_cli(config, "list").stdout.splitlines()) == 3


def test_a_label_no_lines_entry_gives_is_stored_with_a_warning(tmp_path: Path) -> None:
    config = configured(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = silence_cli(config, "add", "--label", "team=support", "--for", "1h",
                         "--reason", "reorg")
    assert result.returncode == 0, output(result)
    assert "no [[lines]] entry in the config gives the label team=support" in result.stderr


def test_every_silence_action_reads_the_config_it_is_given(tmp_path: Path) -> None:
    missing = tmp_path / "not-there.toml"
    for args in (["add", "--account", "main", "--for", "1h", "--reason", "x"], ["list"],
                 ["expire", "1"]):
        result = cli("silence", *args, "--config", str(missing), "--log-level", "DEBUG",
                     "--log-format", "json", cwd=tmp_path)
        assert result.returncode == 2, output(result)
        assert str(missing) in result.stderr


def test_a_one_shot_poll_records_silenced_changes_and_speaks_once_the_silence_has_ended(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer, receiver: Receiver) -> None:
    sim.add_line(PHONE)
    config = write_config(tmp_path / "config.toml", base_url=sim_server.url,
                          database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                          channels=[("ops", receiver.url("ops"), "AT_RISK")])
    assert cli("poll", "--config", str(config)).returncode == 0
    added = silence_cli(config, "add", "--line", PHONE, "--for", "1h", "--reason", "porting")
    assert added.returncode == 0, output(added)
    sim.set_status(PHONE, "AT_RISK")

    silenced = cli("poll", "--config", str(config))
    assert silenced.returncode == 0, output(silenced)
    assert "1 changes, 0 notifications queued" in silenced.stdout  # recorded, not sent
    assert receiver.messages == []

    assert silence_cli(config, "expire", "1").returncode == 0
    ended = cli("poll", "--config", str(config))
    assert "0 changes, 1 notifications queued" in ended.stdout, output(ended)
    (notice,) = receiver.wait_for(1)
    assert PHONE in notice.title and "silence on this line ended" in notice.message
