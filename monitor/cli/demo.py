"""``reputation-monitor demo``: the real daemon, SQLite in a temp dir, the built-in simulator,
alerts printed in this terminal through a real Apprise notifier (``console://``)."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

import httpx

from monitor.alerts.checks import ALERT_CHECKS
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.service.daemon import run_daemon
from monitor.service.runtime import run_async
from monitor.simulator import Simulator, SimulatorServer, load_scenario
from monitor.simulator.webhooks import WebhookSender, new_secret

_CONFIG = """\
[[accounts]]
name = "demo"
base_url = "{base_url}"
token_file = "token"
poll_interval = "2s"
timeout = "5s"
webhook_secret_env = "DEMO_WEBHOOK_SECRET"

[database]
url = "sqlite:///{db}"

[server]
listen = "127.0.0.1:{port}"

[alerts]
notify_recovery = true
retry_initial = "1s"

[[alerts.channels]]
name = "terminal"
url = "console://"
min_status = "AT_RISK"
# Changes due within a second go out together, as one grouped message.
group_wait = "1s"
"""


def run_demo(*, scenario: str, port: int, duration: float | None) -> int:
    try:
        story = load_scenario(scenario)
    except (ValueError, OSError) as exc:
        raise ConfigError("--scenario", str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="reputation-monitor-demo-") as tmp, \
            SimulatorServer(Simulator(story)) as sim:
        workdir = Path(tmp)
        (workdir / "token").write_text(story.token)
        config_path = workdir / "config.toml"
        config_path.write_text(_CONFIG.format(base_url=sim.url, db=workdir / "demo.db",
                                              port=port))
        config_path.chmod(0o600)
        secret = new_secret()
        config = load_config(config_path, environ={**os.environ, "DEMO_WEBHOOK_SECRET": secret},
                             checks=ALERT_CHECKS)
        sender = WebhookSender(secret)
        # As `webhook register` would have done: the daemon checks the subscription exists.
        sim.sim.subscriptions.create({"target_url": f"https://127.0.0.1:{port}/webhooks/linq",
                                      "subscribed_events": ["phone_number.status_updated"]})
        flagged = sim.sim.lines()[0]["phone_number"] if sim.sim.lines() else None

        def ready(url: str) -> None:
            say(
                "Linq reputation monitor — demo\n"
                f"  simulated Linq API: {sim.url}  (scenario: {scenario})\n"
                f"  database:           {workdir / 'demo.db'} (SQLite, deleted on exit)\n"
                f"  config:             {config_path}\n"
                f"  status page:        {url}/\n"
                f"  metrics:            {url}/metrics   health: {url}/healthz\n"
                "The daemon polls every 2s. Lines will degrade and recover, and one gets\n"
                "FLAGGED by a signed webhook; each alert is\n"
                "printed below as a channel would receive it. Ctrl-C stops."
                + (f" (Stopping by itself after {duration:.0f}s.)" if duration else "")
            )
            if flagged is not None:
                # Linq's webhook, signed as Linq signs it: the line is FLAGGED, then ACTIVE.
                for delay, status in ((3.0, "FLAGGED"), (12.0, "ACTIVE")):
                    timer = threading.Timer(delay, _send, args=(
                        sender, url + "/webhooks/linq", flagged, status))
                    timer.daemon = True
                    timer.start()

        run_async(run_daemon(config, on_ready=ready, duration=duration))
    say("demo stopped")
    return 0


def _send(sender: WebhookSender, url: str, phone: str, status: str) -> None:
    try:
        sender.send(url, sender.status_updated(phone, new_status=status))
    except httpx.HTTPError as exc:  # the demo may be stopping
        say(f"(demo webhook not sent: {type(exc).__name__})")


def say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
