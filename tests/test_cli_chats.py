"""``reputation-monitor chats PHONE``: the line's unhealthy and opted-out chats, worst
first, as a table and as JSON, from what the sweep stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.core.chat_record import ChatRecord
from monitor.store.chats import apply_chats
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.daemon import cli, migrated_config

LINE = "+12025550101"
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def config_with_chats(tmp_path: Path) -> Path:
    config = migrated_config(tmp_path, base_url="http://127.0.0.1:9")
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    records = [ChatRecord(f"chat_{n}", LINE, "HEALTHY", T0, T0, None) for n in range(5)]
    records += [
        ChatRecord("chat_risk", LINE, "AT_RISK", T0 + timedelta(hours=1), T0, "https://d/a"),
        ChatRecord("chat_stop", LINE, "OPTED_OUT", T0 + timedelta(hours=3), T0, "https://d/o"),
        ChatRecord("chat_bad", LINE, "CRITICAL", T0 + timedelta(hours=2), T0, "https://d/c"),
        ChatRecord("chat_else", "+12025550999", "CRITICAL", T0, T0, None),
    ]
    apply_chats(make_sessionmaker(engine), "main", records)
    engine.dispose()
    return config


def test_it_lists_the_lines_unhealthy_and_opted_out_chats_worst_first(tmp_path: Path) -> None:
    config = config_with_chats(tmp_path)
    done = cli("chats", LINE, "--config", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "CHAT", "CHANGED"]
    assert [row.split()[1] for row in lines[1:]] == ["chat_bad", "chat_risk", "chat_stop"]
    assert "https://d/c" in lines[1]
    assert "chat_else" not in done.stdout and "chat_0" not in done.stdout


def test_it_prints_the_documented_json(tmp_path: Path) -> None:
    config = config_with_chats(tmp_path)
    done = cli("chats", LINE, "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["line"] == LINE
    assert [(c["chat_id"], c["status"]) for c in shown["chats"]] == [
        ("chat_bad", "CRITICAL"), ("chat_risk", "AT_RISK"), ("chat_stop", "OPTED_OUT")]
    assert shown["chats"][0] == {
        "account": "main", "chat_id": "chat_bad", "phone_number": LINE, "status": "CRITICAL",
        "changed_at": "2026-11-20T02:00:00+00:00", "updated_at": "2026-11-20T00:00:00+00:00",
        "doc_url": "https://d/c"}


def test_a_line_without_such_chats_says_so(tmp_path: Path) -> None:
    config = config_with_chats(tmp_path)
    done = cli("chats", "+12025550000", "--config", str(config))
    assert done.returncode == 0
    assert done.stdout.strip() == "no unhealthy or opted-out chats known for +12025550000"
