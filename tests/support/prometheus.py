"""Prometheus's own tools for the tests: finding `promtool` and `prometheus`, and running a
real Prometheus server on a free port that scrapes the daemon and loads alert rules.

The binaries come from Debian's ``prometheus`` package, which ``bash .ci/run`` unpacks into
``.ci-tools/prometheus`` (nothing is installed or started system-wide). A test that needs one
skips with the reason when it is missing, or fails when ``REQUIRE_PROMETHEUS=1`` /
``REQUIRE_PROMTOOL=1`` says CI must have it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
_UNPACKED = ROOT / ".ci-tools/prometheus/usr/bin"


def find_tool(name: str) -> str | None:
    """``$NAME`` (upper-cased), then ``PATH``, then the copy that .ci/run unpacked."""
    found = os.environ.get(name.upper()) or shutil.which(name)
    if not found and (_UNPACKED / name).exists():
        found = str(_UNPACKED / name)
    return found


def require_tool(name: str) -> str:
    """The tool's path; skips the test without it, or fails if ``REQUIRE_<NAME>=1``."""
    found = find_tool(name)
    if found is not None:
        return found
    if os.environ.get(f"REQUIRE_{name.upper()}") == "1":
        pytest.fail(f"REQUIRE_{name.upper()}=1 but {name} was not found")
    pytest.skip(f"{name} not found: set ${name.upper()}, put it on PATH, or run bash .ci/run "
                "(it unpacks Debian's prometheus package into .ci-tools/)")


class PrometheusServer:
    """A real ``prometheus`` scraping ``target`` every second and evaluating ``rule_files``
    every second, its data in ``workdir``; the scrape job is named ``reputation-monitor``
    like everywhere in deploy/.

    Use as a context manager; `start` returns once ``/-/ready`` answers 200.
    """

    JOB = "reputation-monitor"

    def __init__(self, binary: str, *, workdir: Path, target: str,
                 rule_files: list[Path]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": self.JOB,
                                "static_configs": [{"targets": [target]}]}],
        }))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout: float = 30) -> PrometheusServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a port that is not open yet: there is no event to await
        raise AssertionError(f"prometheus did not become ready:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>``; returns ``data``, or raises with Prometheus's error."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: "
                                 f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups
