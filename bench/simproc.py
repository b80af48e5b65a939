"""The simulator in its own process, so serving a large body does not share our GIL.

Usage: python -m bench.simproc --lines N --port P [--chats C]

``--chats`` gives every line C chats (GET /v3/chats), all HEALTHY.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from monitor.simulator import Simulator, serve_forever


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chats", type=int, default=0, help="chats per line")
    args = parser.parse_args()
    sim = Simulator(token="bench-token")
    sim.add_lines(args.lines)
    if args.chats:
        at = datetime.now(UTC)
        for line in sim.lines():
            sim.chats.add_chats(line["phone_number"], args.chats, at=at)
    asyncio.run(serve_forever(sim, port=args.port, log_level="warning"))


if __name__ == "__main__":
    main()
