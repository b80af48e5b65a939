"""A launcher that forks ``reputation-monitor run`` processes with the imports already done.

    python -m tests.support.forkrun CONFIG LOG

Importing the daemon (Apprise, SQLAlchemy, uvicorn…) costs seconds of CPU; a kill -9 test
of fifty cycles would spend most of its time there. This process imports everything once
(no threads, no event loop, no connections yet, so forking is safe) and then serves two
commands, one per line on stdin:

- ``start``: fork a child that runs the CLI's ``run`` exactly as the console script does,
  its output appended to LOG; answers ``started PID``;
- ``kill``: SIGKILL the child and reap it; answers ``killed RC`` (``RC`` is the exit code
  it already had if it died on its own, else ``-9``).

The child is a whole separate process, with its own event loop, sockets and database
connections: a SIGKILL to it is the same as to a daemon started from a shell.
"""

from __future__ import annotations

import os
import signal
import sys

import monitor.service.daemon  # noqa: F401  (the heavy imports, done once before forking)
from monitor.cli.main import main as cli_main


def _child(config: str, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        code = cli_main(["run", "--config", config])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    os._exit(code or 0)


def main() -> None:
    config, log = sys.argv[1], sys.argv[2]
    child: int | None = None
    for command in sys.stdin:
        command = command.strip()
        if command == "start":
            sys.stdout.flush()
            child = os.fork()
            if child == 0:
                _child(config, log)
            print(f"started {child}", flush=True)
        elif command == "kill" and child is not None:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid == 0:
                os.kill(child, signal.SIGKILL)
                _, status = os.waitpid(child, 0)
            print(f"killed {os.waitstatus_to_exitcode(status)}", flush=True)
            child = None
        else:
            print(f"unknown command {command!r}", flush=True)


if __name__ == "__main__":
    main()
