"""Command line: argument parsing, output and exit codes only.

Exit codes: 0 success; 1 the command ran but something failed (a poll, a delivery);
2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from monitor import __version__
from monitor.errors import ConfigError, MonitorError, SchemaMismatch, UsageError
from monitor.logs import setup_logging

# Each command imports what it needs when it runs: `--help` and `--version` must not pay
# for Apprise, SQLAlchemy and the web server (about a second of imports), nor `status` for
# the web server.
if TYPE_CHECKING:
    from monitor.config import Config

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIG_ENV = "REPUTATION_MONITOR_CONFIG"


def default_config_path() -> str:
    return os.environ.get(CONFIG_ENV) or "config.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reputation-monitor",
        description="Watch the reputation of Linq phone lines; alert when they degrade.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, *, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("--config", default=None, metavar="FILE",
                           help=f"config file (default: ${CONFIG_ENV}, then ./config.toml)")
        p.add_argument("--log-level", default=None,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        p.add_argument("--log-format", default=None, choices=["text", "json"],
                       help="text for people (default), json for log pipelines")
        return p

    command("run", "run the daemon: poll, store, alert, serve /metrics")
    command("poll", "poll every account once (store, detect, alert, deliver) and exit")
    p = command("status", "show every known line and its current status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="include lines removed from the account")
    p = command("history", "show recorded changes, newest first")
    p.add_argument("line", nargs="?", metavar="PHONE_OR_ID")
    p.add_argument("--since", default=None, help="only changes this recent, e.g. 7d, 12h")
    p.add_argument("--json", action="store_true")
    command("check-config", "validate the config and explain what it sets up")
    command("test-alert", "send a test notification to every channel and report each")
    p = command("db", "database maintenance")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="apply pending migrations")
    # SUPPRESS: `db --config F upgrade` must keep the F the parent parser read.
    up.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
    pr = dbsub.add_parser("prune", help="condense history older than [database] retention")
    pr.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
    p = command("alerts", "alert messages")
    alerts_sub = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    pv = alerts_sub.add_parser("preview", help="print every kind of message with sample data, "
                               "as each channel would get it; sends nothing")
    pv.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
    pv.add_argument("--channel", default=None, metavar="NAME", help="only this channel")
    p = command("report", "per line: time in each status, degradations, time to recover")
    p.add_argument("--since", default="30d", help="the window, e.g. 30d (default), 7d, 12h")
    p.add_argument("--format", choices=["md", "csv"], default="md")
    _add_silence_commands(command("silence", "silence alerts about a line, a label or an "
                                  "account for a while; list and expire silences"))
    p = command("audit", "run a reputation audit of a line now, or `audit show PHONE`")
    p.add_argument("words", nargs="+", metavar="[show] PHONE")
    p.add_argument("--account", default=None, help="needed when several accounts have it")
    p = command("webhook", "manage Linq webhook subscriptions")
    whsub = p.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    reg = whsub.add_parser("register", help="subscribe phone_number.status_updated to a URL")
    reg.add_argument("--url", required=True, help="the daemon's public https://.../webhooks/linq")
    lst = whsub.add_parser("list", help="list the account's subscriptions")
    rm = whsub.add_parser("delete", help="delete a subscription")
    rm.add_argument("subscription_id", metavar="ID")
    for action in (reg, lst, rm):
        action.add_argument("--account", default=None)
        action.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
    p = command("demo", "run the real daemon against the built-in simulator", config=False)
    p.add_argument("--config", default=None, metavar="FILE", help="ignored; the demo makes its own")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--port", type=int, default=9464, help="port for /metrics (0: any free)")
    p.add_argument("--scenario", default="demo", help="built-in scenario name or TOML file")
    p = command("simulate", "serve a fake Linq API from a scenario file", config=False)
    p.add_argument("--config", default=None, metavar="FILE", help="ignored")
    p.add_argument("--scenario", default="demo", help="built-in scenario name or TOML file")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    return parser


def _add_silence_commands(parent: argparse.ArgumentParser) -> None:
    actions = parent.add_subparsers(dest="silence_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: `silence --config F add ...` must keep the F the parent parser read.
        p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
        p.add_argument("--log-level", default=argparse.SUPPRESS,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        p.add_argument("--log-format", default=argparse.SUPPRESS, choices=["text", "json"])
        return p

    add = action("add", "silence the lines one matcher selects, from now for a while")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--line", type=_short_text, metavar="PHONE_OR_ID",
                        help="one line, by phone number or line id")
    target.add_argument("--label", type=_label, metavar="KEY=VALUE",
                        help="every line with this label (from [[lines]] in the config)")
    target.add_argument("--account", type=_short_text, metavar="NAME",
                        help="every line of a configured account")
    add.add_argument("--for", dest="duration", type=_positive_duration, required=True,
                     metavar="DURATION", help="how long, e.g. 30m, 4h, 2d")
    add.add_argument("--reason", type=_text, required=True, help="why, for whoever looks later")
    add.add_argument("--by", type=_short_text, default=None, metavar="WHO",
                     help="who is silencing (default: $USER@hostname)")
    listing = action("list", "show active and upcoming silences")
    listing.add_argument("--all", action="store_true", help="include ended and expired ones")
    expire = action("expire", "end a silence now")
    expire.add_argument("id", type=int, metavar="ID")


def _text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value.strip()


def _short_text(value: str) -> str:
    value = _text(value)
    if len(value) > 200:
        raise argparse.ArgumentTypeError("must be at most 200 characters")
    return value


def _label(value: str) -> str:
    from monitor.core.silence import parse_label_matcher

    try:
        key, label_value = parse_label_matcher(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _short_text(f"{key}={label_value}")


def _positive_duration(value: str) -> timedelta:
    from monitor.config import parse_duration

    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return duration


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO", args.log_format or "text")
    handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, SchemaMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK


def run_async(main: Coroutine[Any, Any, T]) -> T:
    from monitor.service.runtime import run_async as run

    return run(main)


def load(args: argparse.Namespace) -> Config:
    from monitor.alerts.checks import ALERT_CHECKS
    from monitor.config import load_config

    path = Path(args.config or default_config_path())
    config = load_config(path, checks=ALERT_CHECKS)
    setup_logging(args.log_level or config.log_level, args.log_format or config.log_format)
    for warning in config.warnings:
        logging.getLogger("monitor").warning("%s", warning)
    return config


def _run(args: argparse.Namespace) -> int:
    from monitor.service.daemon import run_daemon

    run_async(run_daemon(load(args)))
    return EXIT_OK


def _poll(args: argparse.Namespace) -> int:
    from monitor.cli.commands import poll_once

    outcomes = run_async(poll_once(load(args)))
    for outcome in outcomes:
        print(outcome.summary())
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    from monitor.cli.commands import print_status

    return print_status(load(args), as_json=args.json, include_removed=args.all)


def _history(args: argparse.Namespace) -> int:
    from monitor.cli.commands import print_history
    from monitor.config import parse_duration

    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise ConfigError("--since", str(exc)) from None
    return print_history(load(args), line=args.line, since=since, as_json=args.json)


def _check_config(args: argparse.Namespace) -> int:
    from monitor.cli.commands import explain_config

    print(explain_config(load(args)))
    return EXIT_OK


def _test_alert(args: argparse.Namespace) -> int:
    from monitor.cli.commands import send_test_alerts

    return EXIT_OK if run_async(send_test_alerts(load(args))) else EXIT_FAILED


def _report(args: argparse.Namespace) -> int:
    from monitor.cli.commands import print_report
    from monitor.config import parse_duration

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise ConfigError("--since", str(exc)) from None
    return print_report(load(args), since=since, fmt=args.format)


def _db(args: argparse.Namespace) -> int:
    from monitor.cli.commands import prune_now, upgrade_now

    config = load(args)
    return prune_now(config) if args.db_command == "prune" else upgrade_now(config)


def _alerts(args: argparse.Namespace) -> int:
    from monitor.cli.commands import preview_alerts

    return preview_alerts(load(args), channel=args.channel)
def _silence(args: argparse.Namespace) -> int:
    from monitor.cli import commands
    from monitor.core.silence import MatcherKind

    config = load(args)
    if args.silence_command == "list":
        return commands.print_silences(config, include_expired=args.all)
    if args.silence_command == "expire":
        return commands.expire_silence(config, args.id)
    kind, value = next((k, getattr(args, k.value)) for k in MatcherKind
                       if getattr(args, k.value) is not None)
    return commands.add_silence(config, kind=kind, value=value, duration=args.duration,
                                reason=args.reason, created_by=args.by)


def _demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import run_demo

    return run_demo(scenario=args.scenario, port=args.port, duration=args.duration)


def _simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import Simulator, load_scenario, serve_forever

    try:
        scenario = load_scenario(args.scenario)
    except (ValueError, OSError) as exc:
        raise ConfigError("--scenario", str(exc)) from None
    print(f"simulated Linq API on http://{args.host}:{args.port} "
          f"(token: {scenario.token}); Ctrl-C stops", file=sys.stderr)
    asyncio.run(serve_forever(Simulator(scenario), host=args.host, port=args.port))
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from monitor.cli.audit import parse_words, run_audit, show_audit

    show, phone = parse_words(args.words)
    if show:
        text = show_audit(load(args), phone=phone)
        print(text or f"no audit of {phone} recorded")
        return EXIT_OK if text else EXIT_FAILED
    text, complete = run_async(run_audit(load(args), phone=phone,
                                         account_name=args.account))
    print(text)
    return EXIT_OK if complete else EXIT_FAILED


def _webhook(args: argparse.Namespace) -> int:
    from monitor.webhooks import subscriptions

    config = load(args)
    if args.webhook_command == "register":
        text = run_async(subscriptions.register(config, account_name=args.account,
                                                url=args.url))
    elif args.webhook_command == "list":
        text = run_async(subscriptions.list_subscriptions(config, account_name=args.account))
    else:
        text = run_async(subscriptions.delete(config, account_name=args.account,
                                              subscription_id=args.subscription_id))
    print(text)
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "poll": _poll,
    "status": _status,
    "history": _history,
    "check-config": _check_config,
    "test-alert": _test_alert,
    "db": _db,
    "report": _report,
    "alerts": _alerts,
    "silence": _silence,
    "demo": _demo,
    "simulate": _simulate,
    "audit": _audit,
    "webhook": _webhook,
}
