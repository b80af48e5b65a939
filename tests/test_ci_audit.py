""".ci/audit.py fails closed: a finding, a package it could not look up, or an empty report
fails CI; only a clean report of every package passes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

AUDIT = Path(__file__).resolve().parents[1] / ".ci" / "audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", AUDIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLEAN = {"name": "jinja2", "version": "3.1.6", "vulns": []}


def test_a_report_of_clean_packages_passes(audit: ModuleType) -> None:
    assert audit.verdict({"dependencies": [CLEAN]}) == 0


@pytest.mark.parametrize("report", [
    {"dependencies": [CLEAN, {"name": "jinja2", "version": "3.1.4", "vulns": [
        {"id": "GHSA-q2x7-8rv6-6q7h", "fix_versions": ["3.1.5"]}]}]},
    {"dependencies": [CLEAN, {"name": "starlette", "skip_reason": "Dependency not found"}]},
    {"dependencies": []},
    {},
], ids=["known-vulnerability", "package-not-audited", "empty-report", "no-report"])
def test_anything_short_of_a_clean_audit_fails(audit: ModuleType, report: dict[str, object],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.verdict(report) == 1
    assert capsys.readouterr().out.startswith("pip-audit: ")
