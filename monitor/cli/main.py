"""Command line: argument parsing, output and exit codes only.

Exit codes: 0 success; 1 the command ran but something failed (a poll, a delivery);
2 bad usage or bad configuration; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from monitor import __version__
from monitor.cli import arguments
from monitor.errors import ConfigError, MonitorError, SchemaMismatch, UsageError
from monitor.logs import setup_logging

# Each command imports what it needs when it runs: `--help` and `--version` must not pay
# for Apprise, SQLAlchemy and the web server (about a second of imports), nor `status` for
# the web server.
if TYPE_CHECKING:
    from monitor.config import Config

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for any tool whose reader went away
CONFIG_ENV = "REPUTATION_MONITOR_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

EXIT_CODES = """\
exit codes:
  0    success
  1    the command ran but something failed (a poll, a delivery, a channel)
  2    bad usage or bad configuration
  130  interrupted (Ctrl-C)

--config, --log-level and --log-format go before or after the command's name.
Shell completion: `reputation-monitor completion bash|zsh|fish` (see docs/cli.md)."""


def default_config_path() -> str:
    return os.environ.get(CONFIG_ENV) or "config.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reputation-monitor",
        description="Watch the reputation of Linq phone lines; alert when they degrade.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, *, config: str | None = None
                ) -> argparse.ArgumentParser:
        return _subcommand(sub, name, help_text, config=config)

    command("run", "run the daemon: poll, store, alert, serve /metrics (SIGTERM, SIGINT "
            "and SIGHUP stop it cleanly)")
    command("poll", "poll every account once (store, detect, alert, deliver) and exit")
    p = command("status", "show every known line and its current status, worst first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="include lines removed from the account")
    p.add_argument("--status", dest="statuses", action="append", type=arguments.statuses,
                   metavar="STATUS[,STATUS]", help="only lines in these statuses (any case; "
                   "repeatable); FLAGGED selects lines Linq flagged")
    p.add_argument("--account", dest="accounts", action="append", type=arguments.short_text,
                   metavar="NAME", help="only lines of this account (repeatable)")
    p.add_argument("--label", dest="labels", action="append", type=arguments.label,
                   metavar="KEY=VALUE", help="only lines with this label, from [[lines]] "
                   "in the config (repeatable: all must match)")
    p = command("history", "show recorded changes, newest first")
    p.add_argument("line", nargs="?", metavar="PHONE_OR_ID")
    p.add_argument("--since", type=arguments.positive_duration, default=None, metavar="DURATION",
                   help="only changes this recent, e.g. 7d, 12h")
    p.add_argument("--limit", type=arguments.positive_int, default=50, metavar="N",
                   help="show at most N changes (default 50); says how many more exist")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("chats", "list a line's unhealthy and opted-out chats, worst first")
    p.add_argument("line", metavar="PHONE_OR_ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("check-config", "validate the config and explain what it sets up")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("test-alert", "send a test notification to every channel and report each")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db = command("db", "database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    _subcommand(db, "upgrade", "apply pending migrations")
    _subcommand(db, "prune", "condense history older than [database] retention")
    alerts = command("alerts", "alert messages").add_subparsers(
        dest="alerts_command", required=True, metavar="ACTION")
    pv = _subcommand(alerts, "preview", "print every kind of message with sample data, as "
                     "each channel would get it; sends nothing")
    pv.add_argument("--channel", default=None, metavar="NAME", help="only this channel")
    p = command("report", "per line: time in each status, degradations, time to recover")
    p.add_argument("--since", type=arguments.positive_duration, default="30d", metavar="DURATION",
                   help="the window, e.g. 30d (default), 7d, 12h")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    _add_silence_commands(command("silence", "silence alerts about a line, a label or an "
                                  "account for a while; list and expire silences"))
    p = command("audit", "run a reputation audit of a line now, or `audit show PHONE`")
    p.add_argument("words", nargs="+", metavar="[show] PHONE")
    p.add_argument("--account", default=None, help="needed when several accounts have it")
    webhook = command("webhook", "manage Linq webhook subscriptions").add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION")
    reg = _subcommand(webhook, "register", "subscribe phone_number.status_updated to a URL")
    reg.add_argument("--url", required=True, help="the daemon's public https://.../webhooks/linq")
    reg.add_argument("--chats", action="store_true", help="also the message and chat events "
                     "that carry a chat's health (applied at once, between chat sweeps)")
    lst = _subcommand(webhook, "list", "list the account's subscriptions")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    rm = _subcommand(webhook, "delete", "delete a subscription")
    rm.add_argument("subscription_id", metavar="ID")
    for action in (reg, lst, rm):
        action.add_argument("--account", default=None)
    p = command("demo", "run the real daemon against the built-in simulator",
                config="ignored; the demo makes its own")
    p.add_argument("--duration", type=arguments.positive_duration, default=None, metavar="DURATION",
                   help="stop after this long, e.g. 30s, 2m")
    p.add_argument("--port", type=int, default=9464, help="port for /metrics (0: any free)")
    p.add_argument("--scenario", default="demo", help="built-in scenario name or TOML file")
    p = command("simulate", "serve a fake Linq API from a scenario file", config="ignored")
    p.add_argument("--scenario", default="demo", help="built-in scenario name or TOML file")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p = command("completion", "print a shell completion script (source it, or install it "
                "where your shell looks)", config="ignored")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    return parser


def _subcommand(parent: Any, name: str, help_text: str, *, config: str | None = None
                ) -> argparse.ArgumentParser:
    """A command (or an action of one) that accepts the global options too."""
    p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
    _global_options(p, top=False, config_help=config)
    return p


def _global_options(parser: argparse.ArgumentParser, *, top: bool,
                    config_help: str | None = None) -> None:
    """--config, --log-level and --log-format, accepted on every level of the command tree.

    Only the top level has defaults: a level below sets the value only when it is given
    there (SUPPRESS), so `--config F run` and `run --config F` both keep F.
    """
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", default=default, metavar="FILE", help=config_help or (
        f"config file (default: ${CONFIG_ENV}, then ./config.toml)"))
    parser.add_argument("--log-level", default=default, type=str.upper, choices=LOG_LEVELS,
                        metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR, in any case "
                        "(default: log_level in the config, else INFO)")
    parser.add_argument("--log-format", default=default, choices=["text", "json"],
                        help="text for people (default), json for log pipelines")


def _add_silence_commands(parent: argparse.ArgumentParser) -> None:
    actions = parent.add_subparsers(dest="silence_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return _subcommand(actions, name, help_text)

    add = action("add", "silence the lines one matcher selects, from now for a while")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--line", type=arguments.short_text, metavar="PHONE_OR_ID",
                        help="one line, by phone number or line id")
    target.add_argument("--label", type=arguments.label, metavar="KEY=VALUE",
                        help="every line with this label (from [[lines]] in the config)")
    target.add_argument("--account", type=arguments.short_text, metavar="NAME",
                        help="every line of a configured account")
    add.add_argument("--for", dest="duration", type=arguments.positive_duration, required=True,
                     metavar="DURATION", help="how long, e.g. 30m, 4h, 2d")
    add.add_argument("--reason", type=arguments.text, required=True,
                     help="why, for whoever looks later")
    add.add_argument("--by", type=arguments.short_text, default=None, metavar="WHO",
                     help="who is silencing (default: $USER@hostname)")
    listing = action("list", "show active and upcoming silences")
    listing.add_argument("--all", action="store_true", help="include ended and expired ones")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    expire = action("expire", "end a silence now")
    expire.add_argument("id", type=int, metavar="ID")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(arguments.attach_negative_values(
            sys.argv[1:] if argv is None else argv))
        setup_logging(args.log_level or "INFO", args.log_format or "text")
        return _COMMANDS[args.command](args)
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
        # The shell's convention for a command stopped by SIGINT (128 + 2): a script
        # running `reputation-monitor poll && next` must not read Ctrl-C as success.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `status | head`: the reader has what it wanted. Exit as a tool killed by SIGPIPE
        # would, without a traceback; stdout goes to /dev/null so the flush at exit is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def run_async(main: Coroutine[Any, Any, T]) -> T:
    from monitor.service.runtime import run_async as run

    return run(main)


def load(args: argparse.Namespace, *, secrets: bool = True) -> Config:
    """The config the command names. ``secrets=False`` for the commands that only work on
    the database (status, history, report, silence, db, audit show, alerts preview): on-call
    can run them without the Linq token or any channel URL in the environment."""
    from monitor.alerts.checks import ALERT_CHECKS
    from monitor.config import load_config

    path = Path(args.config or default_config_path())
    config = load_config(path, checks=ALERT_CHECKS, secrets=secrets)
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
    from monitor.cli.lines import LineFilter

    wanted = LineFilter.of(statuses=[s for group in args.statuses or [] for s in group],
                           accounts=args.accounts or [], labels=args.labels or [])
    return print_status(load(args, secrets=False), as_json=args.json,
                        include_removed=args.all,
                        wanted=wanted)


def _history(args: argparse.Namespace) -> int:
    from monitor.cli.commands import print_history

    return print_history(load(args, secrets=False), line=args.line, since=args.since,
                         as_json=args.json,
                         limit=args.limit)


def _chats(args: argparse.Namespace) -> int:
    from monitor.cli.chats import print_chats

    return print_chats(load(args, secrets=False), line=args.line, as_json=args.json)


def _check_config(args: argparse.Namespace) -> int:
    from monitor.cli.commands import explain_config
    from monitor.cli.shapes import config_json, dump

    config = load(args)
    print(dump(config_json(config)) if args.json else explain_config(config))
    return EXIT_OK


def _test_alert(args: argparse.Namespace) -> int:
    from monitor.cli.commands import send_test_alerts

    return EXIT_OK if run_async(send_test_alerts(load(args), as_json=args.json)) else EXIT_FAILED


def _report(args: argparse.Namespace) -> int:
    from monitor.cli.commands import print_report

    return print_report(load(args, secrets=False), since=args.since,
                        fmt="json" if args.json else args.format)


def _db(args: argparse.Namespace) -> int:
    from monitor.cli.commands import prune_now, upgrade_now

    config = load(args, secrets=False)
    return prune_now(config) if args.db_command == "prune" else upgrade_now(config)


def _alerts(args: argparse.Namespace) -> int:
    from monitor.cli.commands import preview_alerts

    return preview_alerts(load(args, secrets=False), channel=args.channel)


def _silence(args: argparse.Namespace) -> int:
    from monitor.cli import commands
    from monitor.core.silence import MatcherKind

    config = load(args, secrets=False)
    if args.silence_command == "list":
        return commands.print_silences(config, include_expired=args.all, as_json=args.json)
    if args.silence_command == "expire":
        return commands.expire_silence(config, args.id)
    kind, value = next((k, getattr(args, k.value)) for k in MatcherKind
                       if getattr(args, k.value) is not None)
    return commands.add_silence(config, kind=kind, value=value, duration=args.duration,
                                reason=args.reason, created_by=args.by)


def _demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import run_demo

    duration = args.duration.total_seconds() if args.duration is not None else None
    return run_demo(scenario=args.scenario, port=args.port, duration=duration)


def _completion(args: argparse.Namespace) -> int:
    from monitor.cli.completion import SCRIPTS

    print(SCRIPTS[args.shell](build_parser()), end="")
    return EXIT_OK


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
        text = show_audit(load(args, secrets=False), phone=phone)
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
                                                url=args.url, chats=args.chats))
    elif args.webhook_command == "list":
        text = run_async(subscriptions.list_subscriptions(config, account_name=args.account,
                                                          as_json=args.json))
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
    "chats": _chats,
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
    "completion": _completion,
}
