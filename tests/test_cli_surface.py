"""The command line's surface: where options go, what a duration is, what --help says, and
the completion scripts each shell gets from the parser (run in the real shell)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from monitor.cli.completion import commands
from monitor.cli.main import build_parser
from tests.support.daemon import cli, write_config

pytestmark = pytest.mark.timeout(60)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                        database_url=f"sqlite:///{tmp_path / 'monitor.db'}")


# -- global options ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--config", "{missing}", "run"],
    ["run", "--config", "{missing}"],
    ["--config", "{missing}", "status", "--json"],
    ["silence", "--config", "{missing}", "add", "--line", "+1415", "--for", "1h",
     "--reason", "r"],
    ["--config", "{missing}", "silence", "add", "--line", "+1415", "--for", "1h",
     "--reason", "r"],
    ["silence", "add", "--line", "+1415", "--for", "1h", "--reason", "r",
     "--config", "{missing}"],
    ["--config", "{missing}", "db", "upgrade"],
    ["webhook", "--config", "{missing}", "list"],
], ids=lambda argv: " ".join(argv))
def test_it_takes_the_config_before_or_after_the_command_at_any_level(
        tmp_path: Path, argv: list[str]) -> None:
    missing = tmp_path / "not-there.toml"

    result = cli(*(str(missing) if a == "{missing}" else a for a in argv), cwd=tmp_path)

    # The named file was the one looked for, wherever the option stood.
    assert result.returncode == 2, output(result)
    assert f"config file {missing} does not exist" in result.stderr, output(result)


def test_log_options_go_anywhere_and_the_level_in_any_case(tmp_path: Path) -> None:
    # A channel selecting a label no line gets: the config loads with a logged warning.
    config = write_config(tmp_path / "config.toml", base_url="http://127.0.0.1:9",
                          database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
                          channels=[("ops", "json://127.0.0.1:9/hook", "AT_RISK")],
                          channel_options='labels = { team = "nobody" }')
    warned = "no [[lines]] entry gives team=nobody"

    before = cli("--log-level", "warning", "--log-format", "json", "--config", str(config),
                 "check-config")
    after = cli("check-config", "--config", str(config), "--log-level", "Warning",
                "--log-format", "json")
    quiet = cli("--log-level", "error", "check-config", "--config", str(config))
    nested = cli("alerts", "--log-level", "ERROR", "preview", "--config", str(config))

    for result in (before, after):
        assert result.returncode == 0, output(result)
        # The warning, as a JSON line: both options reached the logging set-up.
        assert re.search(r'^\{.*"level": "warning".*team=nobody', result.stderr, re.M), (
            output(result))
    for result in (quiet, nested):
        assert result.returncode == 0, output(result)
        assert warned not in result.stderr, output(result)


def test_it_refuses_an_unknown_log_level_naming_the_choices() -> None:
    result = cli("--log-level", "loud", "status")

    assert result.returncode == 2
    assert "invalid choice: 'LOUD'" in result.stderr
    assert "DEBUG" in result.stderr and "ERROR" in result.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_it_prints_its_version(flag: str) -> None:
    result = cli(flag)

    assert result.returncode == 0
    assert re.fullmatch(r"reputation-monitor \d+\.\d+\.\d+\S*\n", result.stdout)


# -- durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "option"), [
    (["silence", "add", "--line", "+1415", "--reason", "r", "--for", "-5m"], "--for"),
    (["silence", "add", "--line", "+1415", "--reason", "r", "--for=-5m"], "--for"),
    (["silence", "add", "--line", "+1415", "--reason", "r", "--for", "0s"], "--for"),
    (["history", "--since", "-1d"], "--since"),
    (["report", "--since", "0m"], "--since"),
    (["demo", "--duration", "-30s"], "--duration"),
    (["demo", "--duration", "0ms"], "--duration"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_it_refuses_a_zero_or_negative_duration_saying_so(argv: list[str], option: str
                                                           ) -> None:
    result = cli(*argv)

    assert result.returncode == 2
    assert f"argument {option}: must be longer than 0s" in result.stderr, result.stderr
    assert "expected one argument" not in result.stderr


def test_a_duration_needs_its_unit_as_in_the_config() -> None:
    result = cli("demo", "--duration", "30")

    assert result.returncode == 2
    assert "'30' has no unit: write e.g. 30s" in result.stderr


def test_the_demo_takes_a_duration_in_the_config_syntax(tmp_path: Path) -> None:
    # A scenario that does not exist stops the demo right after its options were accepted.
    result = cli("demo", "--duration", "1m30s", "--scenario", str(tmp_path / "none.toml"))

    assert result.returncode == 2, output(result)
    assert "--scenario" in result.stderr and "--duration" not in result.stderr


def test_a_value_after_double_dash_is_left_alone() -> None:
    # `--` ends the options: "-5m" there is a positional, not the value of --since.
    result = cli("history", "--since", "1h", "--", "-5m", "--config", "x")

    assert result.returncode == 2
    assert "unrecognized arguments: --config x" in result.stderr


# -- help --------------------------------------------------------------------------------------

def test_help_lists_the_exit_codes() -> None:
    result = cli("--help")

    assert result.returncode == 0
    codes = result.stdout.split("exit codes:")[1]
    for code, meaning in (("0", "success"), ("1", "something failed"),
                          ("2", "bad usage or bad configuration"), ("130", "interrupted")):
        assert re.search(rf"^\s+{code}\s+.*{meaning}", codes, re.MULTILINE), (code, codes)


def test_the_manual_names_every_command_and_option() -> None:
    page = DOCS.read_text(encoding="utf-8")

    missing = [f"{c.path or '(top)'} {flag}" for c in commands(build_parser())
               for o in c.options for flag in o.flags
               if flag not in ("-h", "--help") and flag not in page]
    missing += [c.path for c in commands(build_parser()) if c.path and f"`{c.path}" not in page]
    assert not missing, f"docs/cli.md does not mention: {missing}"


# -- completion --------------------------------------------------------------------------------

def script(shell: str) -> str:
    result = cli("completion", shell)
    assert result.returncode == 0, output(result)
    return result.stdout


BASH_COMPLETE = """
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_reputation_monitor
printf '%s\\n' "${COMPREPLY[@]}"
"""


def bash_completes(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers for the last word, as it would on <TAB> after ``words``."""
    path = tmp_path / "completion.bash"
    path.write_text(script("bash"))
    result = subprocess.run(["bash", "--norc", "-c", BASH_COMPLETE, "bash", str(path),
                             "reputation-monitor", *words],
                            capture_output=True, text=True, timeout=20, check=True)
    assert not result.stderr, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(("words", "offered"), [
    (["sta"], ["status"]),
    (["--config", "c.toml", "si"], ["silence", "simulate"]),
    (["silence", "--config", "c.toml", "a"], ["add"]),
    (["silence", "add", "--f"], ["--for"]),
    (["status", "--log-level", "W"], ["WARNING"]),
    (["report", "--format", ""], ["md", "csv", "json"]),
    (["completion", ""], ["bash", "zsh", "fish"]),
    (["webhook", "list", "--j"], ["--json"]),
], ids=lambda words: " ".join(words))
def test_bash_completes_commands_actions_options_and_choices(
        tmp_path: Path, words: list[str], offered: list[str]) -> None:
    assert bash_completes(tmp_path, *words) == offered


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_file_names_after_config(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text("")

    assert bash_completes(tmp_path, "--config", str(tmp_path / "moni")) == [
        str(tmp_path / "monitor.toml")]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_parses_and_offers_the_commands(tmp_path: Path) -> None:
    path = tmp_path / "_reputation-monitor"
    path.write_text(script("zsh"))
    # compsys is not loaded in a script: stand-ins print what would be offered.
    program = r"""
compdef() { : }
_describe() { local -a items; items=("${(@P)4}"); print -l -- "${(@)items%%:*}" }
compadd() { print -l -- "${(@P)2}" }
source "$1"
words=(reputation-monitor --config c.toml silence '')
CURRENT=5
_reputation_monitor
words=(reputation-monitor status --log-level '')
CURRENT=4
_reputation_monitor
"""
    assert subprocess.run(["zsh", "-n", str(path)], capture_output=True, timeout=20
                          ).returncode == 0
    result = subprocess.run(["zsh", "-f", "-c", program, "zsh", str(path)],
                            capture_output=True, text=True, timeout=20)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["add", "list", "expire", "DEBUG", "INFO", "WARNING",
                                     "ERROR"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_the_fish_script_parses_and_completes_as_fish_does(tmp_path: Path) -> None:
    path = tmp_path / "reputation-monitor.fish"
    path.write_text(script("fish"))
    program = ('source $argv[1]; complete -C"reputation-monitor sta"; '
               'complete -C"reputation-monitor --config c.toml silence a"; '
               'complete -C"reputation-monitor status --log-level W"')

    assert subprocess.run(["fish", "--no-execute", str(path)], capture_output=True,
                          timeout=20).returncode == 0
    result = subprocess.run(["fish", "--no-config", "-c", program, str(path)],
                            capture_output=True, text=True, timeout=20)

    assert result.returncode == 0 and not result.stderr, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "status", "add", "WARNING"]
