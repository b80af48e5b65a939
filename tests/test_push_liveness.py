"""Push liveness: FLAGGED is only known from webhooks, so a missing, inactive or misdirected
``phone_number.status_updated`` subscription, or signed webhooks being refused (a rotated
secret), must reach the channels once as the monitor's own trouble and show in /readyz."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.config import AccountConfig, parse_config
from monitor.core.push import subscription_problem
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from monitor.webhooks.liveness import SIGNATURES, PushWatch
from tests.support.daemon import DaemonProcess, wait_until, write_config
from tests.support.receiver import Receiver

OURS = "https://monitor.example.com/webhooks/linq"
EVENT = "phone_number.status_updated"


def item(*, events: tuple[str, ...] = (EVENT,), active: bool = True, url: str = OURS
         ) -> dict[str, object]:
    return {"id": "whsub_1", "target_url": url, "subscribed_events": list(events),
            "is_active": active}


@pytest.mark.parametrize(("items", "expected_url", "problem"), [
    ([], OURS, "no webhook subscription to phone_number.status_updated"),
    ([item(events=("message.received",))], None,
     "no webhook subscription to phone_number.status_updated"),
    ([item(active=False)], OURS, "the webhook subscription to phone_number.status_updated "
                                 "is inactive"),
    ([item(url="https://old.example.com/hook?key=SECRET")], OURS,
     "no active webhook subscription to phone_number.status_updated points at "
     "https://monitor.example.com/webhooks/linq (it points at "
     "https://old.example.com/hook)"),
    ([item(url="https://old.example.com/hook")], None, None),
    ([item(active=False), item(url=OURS + "/")], OURS, None),
])
def test_it_says_why_a_subscription_would_not_deliver(
        items: list[dict[str, object]], expected_url: str | None, problem: str | None) -> None:
    assert subscription_problem(items, expected_url=expected_url) == problem


@pytest.fixture
def account(sim_server: SimulatorServer) -> AccountConfig:
    config = parse_config({"accounts": [{"name": "main", "base_url": sim_server.url,
                                         "token": "sim-token"}]}, environ={})
    return config.accounts[0]


async def test_it_checks_the_accounts_subscriptions_on_the_simulator(
        sim: Simulator, account: AccountConfig) -> None:
    watch = PushWatch(expected_url=OURS)
    assert await watch.check(account) == "no webhook subscription to " + EVENT

    _, created = sim.subscriptions.create({"target_url": OURS, "subscribed_events": [EVENT]})
    assert await watch.check(account) is None
    assert watch.findings(["main"]) == {"main": None}
    assert watch.findings([]) == {}  # another replica's account: not judged here

    sim.subscriptions.update(created["id"], {"is_active": False})
    assert await watch.check(account) == f"the webhook subscription to {EVENT} is inactive"
    assert watch.reasons(["main"]) == [f"account main: the webhook subscription to {EVENT} "
                                       "is inactive"]


def test_rejections_in_a_row_raise_the_alarm_once_and_an_accepted_one_clears_it() -> None:
    watch = PushWatch(rejections_to_alarm=3)
    assert watch.findings([]) == {}  # no signed webhook yet: nothing to judge
    alarms = [watch.rejected("no configured secret matches", now=datetime.now(UTC))
              for _ in range(4)]
    assert alarms == [False, False, True, False]
    problem = watch.findings([])[SIGNATURES]
    assert problem is not None and problem.startswith("4 signed webhooks in a row rejected")

    watch.accepted()

    assert watch.findings([]) == {SIGNATURES: None}


@pytest.mark.slow  # a real daemon, ~40 s on 2 cores
def test_the_daemon_tells_the_channels_once_and_readyz_says_why(
        tmp_path: Path, sim: Simulator, sim_server: SimulatorServer,
        receiver: Receiver) -> None:
    secret = new_secret()
    (tmp_path / "webhook-secret").write_text(secret)
    sim.add_line("+12025550101")
    config = write_config(
        tmp_path / "config.toml", base_url=sim_server.url,
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        channels=[("ops", receiver.url("ops"), "AT_RISK")],
        extra_account=f'webhook_secret_file = "{tmp_path / "webhook-secret"}"',
        extra_alerts='policy_interval = "1s"')
    daemon = DaemonProcess(config, log=tmp_path / "daemon.log").start()
    try:
        # No subscription at all: the start-up check finds it.
        receiver.wait_for(1)
        assert receiver.messages[0].title.startswith("[MONITOR] webhooks of account main")
        ready = httpx.get(daemon.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert f"account main: no webhook subscription to {EVENT}" in ready.json()["reasons"]

        # The secret was rotated on Linq's side: signed webhooks fail, three in a row.
        sender = WebhookSender(new_secret())
        for _ in range(4):
            answer = sender.send(daemon.url + "/webhooks/linq",
                                 sender.status_updated("+12025550101", new_status="FLAGGED"))
            assert answer.status_code == 401
        receiver.wait_for(2)
        assert receiver.messages[1].title.startswith("[MONITOR] signed webhooks")
        wait_until(lambda: any(r.startswith("webhooks: 4 signed webhooks in a row rejected")
                               for r in httpx.get(daemon.url + "/readyz",
                                                  timeout=10).json()["reasons"]),
                   what="/readyz to name the rejections")

        # The right secret again: the trouble clears, once.
        right = WebhookSender(secret)
        assert right.send(daemon.url + "/webhooks/linq",
                          right.status_updated("+12025550101", new_status="ACTIVE",
                                               previous_status="ACTIVE")).status_code == 200
        receiver.wait_for(3)
        assert receiver.messages[2].title.startswith("[RESOLVED] monitor: signed webhooks")
        daemon.settle()
        assert len(receiver.messages) == 3, [m.title for m in receiver.messages]
    finally:
        daemon.stop()
