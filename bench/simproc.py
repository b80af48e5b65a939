"""The simulator in its own process, so serving a large body does not share our GIL.

Usage: python -m bench.simproc --lines N --port P   (prints "ready" once listening)
"""

from __future__ import annotations

import argparse
import asyncio

from monitor.simulator import Simulator, serve_forever


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sim = Simulator(token="bench-token")
    sim.add_lines(args.lines)
    asyncio.run(serve_forever(sim, port=args.port, log_level="warning"))


if __name__ == "__main__":
    main()
