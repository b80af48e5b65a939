"""Requests/s of the pre-send gate: ``GET /api/v1/lines/{phone}`` against the running daemon.

    python -m bench.gate --lines 10000 --duration 15 --connections 32

The daemon runs as ``reputation-monitor run`` (SQLite in a temporary directory) polling the
simulator (its own process) with ``--lines`` lines; once the gate knows every line, wrk
(Debian package ``wrk``) asks for a random line's phone number per request, with
``--connections`` keep-alive connections on 2 threads. Without wrk on PATH it says so and
stops: a Python load generator would measure itself, not the daemon.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import running
from tests.support.daemon import free_port

LUA = """
local phones = {%s}
request = function()
  return wrk.format("GET", "/api/v1/lines/" .. phones[math.random(#phones)])
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--duration", type=int, default=15, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install wrk (Debian/Ubuntu)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sim_port, port = free_port(), free_port()
        sim = subprocess.Popen([sys.executable, "-m", "bench.simproc", "--lines",
                                str(args.lines), "--port", str(sim_port)])
        daemon: subprocess.Popen[bytes] | None = None
        try:
            running.wait(f"http://127.0.0.1:{sim_port}/_sim/health",
                         lambda r: r.status_code == 200)
            config = work / "config.toml"
            (work / "token").write_text("bench-token")
            config.write_text(f"""
[[accounts]]
name = "bench"
base_url = "http://127.0.0.1:{sim_port}"
token_file = "{work / 'token'}"
poll_interval = "1h"

[database]
url = "sqlite:///{work / 'monitor.db'}"

[server]
listen = "127.0.0.1:{port}"

[metrics]
per_line = "severity"
""")
            daemon = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(config),
                 "--log-level", "WARNING"], stdout=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            phones = running.phones(base, expected=args.lines, timeout=300)
            script = work / "gate.lua"
            script.write_text(LUA % ", ".join(f'"{p}"' for p in phones))
            result = subprocess.run(
                [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
                 "--latency", "-s", str(script), base],
                capture_output=True, text=True, check=True)
        finally:
            for process in (daemon, sim):
                if process is not None:
                    process.terminate()
                    process.wait(30)
    print(result.stdout)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    print(f"gate lookup: {args.lines} lines, {args.connections} connections, "
          f"{float(rate.group(1)) if rate else float('nan'):.0f} requests/s, "
          f"non-2xx: {errors.group(1) if errors else 0}, "
          f"cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
