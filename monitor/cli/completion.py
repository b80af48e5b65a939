"""``reputation-monitor completion bash|zsh|fish``: completion scripts read off the parser.

Nothing here knows a command by name: ``commands`` walks the argparse tree (commands,
their actions, options, choices) and each shell's script is printed from that, so a new
command or option completes as soon as the parser has it. argparse has no public way to
list what a parser holds; ``_actions`` and ``_choices_actions`` are the attributes its
own help formatter reads, stable since Python 3.2.

Every script works the same way: it walks the words typed so far, skipping options and
their values, to find the command path ("", "silence", "silence add"), then offers the
path's subcommands, or its options after a "-", or an option's choices (or files) after
an option that takes a value.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from monitor import __version__

PROG = "reputation-monitor"
_FILES = "@files"  # in the scripts: complete file names here


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    files: bool  # the value is a path (metavar FILE)


@dataclass(frozen=True, slots=True)
class Command:
    path: str  # "" for the program itself, else the words that select it: "silence add"
    subcommands: tuple[tuple[str, str], ...]  # (name, help)
    options: tuple[Option, ...]
    words: tuple[str, ...]  # choices of a positional argument ("completion bash")


def commands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[Command]:
    """The program and every command and action below it, each with what it accepts."""
    subs: list[tuple[str, str]] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    options: list[Option] = []
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                subs.append((name, helps.get(name, "")))
                children.append((name, child))
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            options.append(Option(
                tuple(action.option_strings), _short(action.help or ""),
                takes_value=action.nargs != 0,
                choices=tuple(str(c) for c in action.choices or ()),
                files=str(action.metavar or "").endswith("FILE")))
        elif action.choices:
            words += [str(c) for c in action.choices]
    yield Command(path, tuple(subs), tuple(options), tuple(words))
    for name, child in children:
        yield from commands(child, f"{path} {name}".strip())


def _short(text: str) -> str:
    """The first clause of a help text, on one line: a completion menu has little room."""
    return " ".join(text.split()).split("; ")[0][:80]


def _values(option: Option) -> str:
    return _FILES if option.files else " ".join(option.choices)


def _value_arms(tree: list[Command], *, sep: str) -> dict[str, list[str]]:
    """For each answer an option that takes a value gives (its choices, files, or
    nothing), the case patterns matching ``path<sep>option`` that give it: one ``case``
    arm each. An option that gives the same answer wherever it appears is matched under
    any path (``*<sep>--config``), which keeps the scripts short."""
    answers: dict[str, dict[str, str]] = {}  # flag -> path -> answer
    for command in tree:
        for option in command.options:
            if option.takes_value:
                for flag in option.flags:
                    answers.setdefault(flag, {})[command.path] = _values(option)
    arms: dict[str, list[str]] = {}
    for flag, by_path in answers.items():
        if len(set(by_path.values())) == 1:
            arms.setdefault(next(iter(by_path.values())), []).append(f"*{sep}{flag}")
        else:
            for path, answer in by_path.items():
                arms.setdefault(answer, []).append(f"{path}{sep}{flag}")
    return arms


def bash(parser: argparse.ArgumentParser) -> str:
    tree = list(commands(parser))
    subs = "\n".join(
        f'        "{c.path}") echo "{" ".join([*(n for n, _ in c.subcommands), *c.words])}";;'
        for c in tree if c.subcommands or c.words)
    opts = "\n".join(
        f'        "{c.path}") echo "{" ".join(f for o in c.options for f in o.flags)}";;'
        for c in tree)
    values = "\n".join(
        "        " + "|".join(_case_pattern(k, _dq) for k in keys)
        + f') echo "{answer}"; return 0;;'
        for answer, keys in _value_arms(tree, sep=" ").items())
    return f"""\
# bash completion for {PROG} {__version__}, generated from its argument parser by
# `{PROG} completion bash`. Load it in the running shell with
#   source <({PROG} completion bash)
# or for good: save it as ~/.local/share/bash-completion/completions/{PROG}

_reputation_monitor_subcommands() {{
    case "$1" in
{subs}
    esac
}}

_reputation_monitor_options() {{
    case "$1" in
{opts}
    esac
}}

# Succeeds when option $2 of command $1 takes a value; prints its choices, or {_FILES}.
_reputation_monitor_values() {{
    case "$1 $2" in
{values}
    esac
    return 1
}}

_reputation_monitor() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev cmdpath="" word values i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ $word == -* ]]; then
            if [[ $word != *=* ]] && _reputation_monitor_values "$cmdpath" "$word" >/dev/null
            then
                i=$((i + 1))
            fi
            continue
        fi
        if [[ " $(_reputation_monitor_subcommands "$cmdpath") " == *" $word "* ]]; then
            cmdpath="${{cmdpath:+$cmdpath }}$word"
        fi
    done
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    if ((COMP_CWORD > 1)) && [[ $prev == -* ]] \\
            && values=$(_reputation_monitor_values "$cmdpath" "$prev"); then
        if [[ $values == {_FILES} ]]; then
            compopt -o filenames 2>/dev/null
            local IFS=$'\\n'
            COMPREPLY=($(compgen -f -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$values" -- "$cur"))
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_reputation_monitor_options "$cmdpath")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_reputation_monitor_subcommands "$cmdpath")" -- "$cur"))
    fi
}}

complete -F _reputation_monitor {PROG}
"""


def _case_pattern(key: str, quote: Callable[[str], str]) -> str:
    """A key of ``_value_arms`` as a shell case pattern: a leading * stays a wildcard."""
    return "*" + quote(key[1:]) if key.startswith("*") else quote(key)


def _dq(text: str) -> str:
    return f'"{text}"'


def zsh(parser: argparse.ArgumentParser) -> str:
    tree = list(commands(parser))

    def described(items: list[tuple[str, str]]) -> str:
        return " ".join(_zsh_quote(f"{name}:{text}" if text else name) for name, text in items)

    subs = "\n".join(
        f'        "{c.path}") reply=({described([*c.subcommands, *((w, "") for w in c.words)])});;'
        for c in tree if c.subcommands or c.words)
    opts = "\n".join(
        f'        "{c.path}") reply=({described([(f, o.help) for o in c.options for f in o.flags])});;'  # noqa: E501
        for c in tree)
    values = "\n".join(
        "        " + "|".join(_case_pattern(k, _zsh_quote) for k in keys)
        + f") reply=({answer}); return 0;;"
        for answer, keys in _value_arms(tree, sep="|").items())
    return f"""\
#compdef {PROG}
# zsh completion for {PROG} {__version__}, generated from its argument parser by
# `{PROG} completion zsh`. Load it in the running shell (after compinit) with
#   source <({PROG} completion zsh)
# or for good: save it as _{PROG} in a directory of your $fpath

_reputation_monitor_subcommands() {{
    reply=()
    case "$1" in
{subs}
    esac
}}

_reputation_monitor_options() {{
    reply=()
    case "$1" in
{opts}
    esac
}}

# Succeeds when option $2 of command $1 takes a value; sets reply to its choices, or {_FILES}.
_reputation_monitor_values() {{
    reply=()
    case "$1|$2" in
{values}
    esac
    return 1
}}

_reputation_monitor() {{
    local cmdpath="" word item prev i
    local -a reply
    for ((i = 2; i < CURRENT; i++)); do
        word=${{words[i]}}
        if [[ $word == -* ]]; then
            if [[ $word != *=* ]] && _reputation_monitor_values "$cmdpath" "$word"; then
                i=$((i + 1))
            fi
            continue
        fi
        _reputation_monitor_subcommands "$cmdpath"
        for item in $reply; do
            if [[ ${{item%%:*}} == "$word" ]]; then
                cmdpath="${{cmdpath:+$cmdpath }}$word"
                break
            fi
        done
    done
    prev=${{words[CURRENT-1]}}
    if ((CURRENT > 2)) && [[ $prev == -* ]] && _reputation_monitor_values "$cmdpath" "$prev"
    then
        if [[ ${{reply[1]}} == {_FILES} ]]; then
            _files
        elif ((${{#reply}})); then
            compadd -a reply
        fi
        return
    fi
    if [[ ${{words[CURRENT]}} == -* ]]; then
        _reputation_monitor_options "$cmdpath"
        _describe -t options option reply
    else
        _reputation_monitor_subcommands "$cmdpath"
        _describe -t commands command reply
    fi
}}

if [[ ${{zsh_eval_context[-1]}} == loadautofunc ]]; then
    _reputation_monitor "$@"
else
    compdef _reputation_monitor {PROG}
fi
"""


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def fish(parser: argparse.ArgumentParser) -> str:
    tree = list(commands(parser))
    subs = "\n".join(
        f"        case {_fish_quote(c.path)}\n            printf '%s\\n' "
        + " ".join([*(n for n, _ in c.subcommands), *c.words])
        for c in tree if c.subcommands or c.words)
    values = "\n".join(
        # fish's switch takes the wildcard inside quotes (unquoted, it globs file names)
        "        case " + " ".join(_fish_quote(k) for k in keys)
        + "\n            return 0"
        for keys in _value_arms(tree, sep="|").values())
    rules = []
    for c in tree:
        at = f"-n {_fish_quote(f'__reputation_monitor_at {_fish_quote(c.path)}')}"
        rules += [f"complete -c {PROG} {at} -a {_fish_quote(name)} -d {_fish_quote(text)}"
                  for name, text in c.subcommands]
        rules += [f"complete -c {PROG} {at} -a {_fish_quote(word)}" for word in c.words]
        for o in c.options:
            flags = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}"
                             for f in o.flags)
            kind = ("-r -F" if o.files else f"-x -a {_fish_quote(' '.join(o.choices))}"
                    if o.choices else "-x" if o.takes_value else "")
            rules.append(" ".join(filter(None, [f"complete -c {PROG} {at} {flags}", kind,
                                                f"-d {_fish_quote(o.help)}"])))
    rules_text = "\n".join(rules)
    return f"""\
# fish completion for {PROG} {__version__}, generated from its argument parser by
# `{PROG} completion fish`. Load it in the running shell with
#   {PROG} completion fish | source
# or for good: save it as ~/.config/fish/completions/{PROG}.fish

function __reputation_monitor_subcommands
    switch "$argv[1]"
{subs}
    end
end

# Succeeds when option $argv[2] of command $argv[1] takes a value.
function __reputation_monitor_takes_value
    switch "$argv[1]|$argv[2]"
{values}
    end
    return 1
end

# The command path typed so far: "", "silence", "silence add", ...
function __reputation_monitor_path
    set -l cmdpath
    set -l skip 0
    for word in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $word
            if not string match -q -- '*=*' $word
                and __reputation_monitor_takes_value "$cmdpath" $word
                set skip 1
            end
        else if contains -- $word (__reputation_monitor_subcommands "$cmdpath")
            set cmdpath $cmdpath $word
        end
    end
    echo "$cmdpath"
end

function __reputation_monitor_at
    set -l cmdpath (__reputation_monitor_path)
    test "$cmdpath" = "$argv[1]"
end

complete -c {PROG} -f
{rules_text}
"""


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


SCRIPTS: dict[str, Callable[[argparse.ArgumentParser], str]] = {
    "bash": bash, "zsh": zsh, "fish": fish,
}
