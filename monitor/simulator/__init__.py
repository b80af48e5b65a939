"""A fake Linq partner API for tests, demos and benchmarks.

`Simulator` holds the fake fleet and decides each answer; `build_app` turns it into an ASGI
app; `SimulatorServer` runs that app on a real socket in a background thread;
`serve_forever` runs it in the foreground. Scenario files script a story poll by poll.
"""

from __future__ import annotations

from monitor.simulator.app import build_app
from monitor.simulator.scenario import (
    Scenario,
    builtin_scenario,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
)
from monitor.simulator.server import SimulatorServer, serve_forever
from monitor.simulator.state import SimResponse, Simulator

__all__ = [
    "Scenario",
    "SimResponse",
    "Simulator",
    "SimulatorServer",
    "build_app",
    "builtin_scenario",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
    "serve_forever",
]
