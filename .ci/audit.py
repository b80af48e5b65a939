"""Audit the locked dependencies with pip-audit; the exit code is CI's verdict.

    python .ci/audit.py --pip-audit PATH --requirements REQS

REQS is ``uv export --locked --extra test --format requirements-txt --no-emit-project``:
every pinned, hashed package the application and its tests install.

Fails closed: CI fails (exit 1) when
- a locked package has a known vulnerability (this service holds API tokens and channel
  credentials: upgrade it, or list the advisory in IGNORED with the reason it does not apply);
- pip-audit produced no report, or could not look up some package, while its
  vulnerability service answered.

The one case that passes without an audit is a machine that cannot reach any vulnerability
database: neither PyPI's JSON API (``https://pypi.org/pypi/NAME/VERSION/json``, which
pip-audit's default service reads; from this project's CI machine it answers 404 while
``/pypi/NAME/json`` and the /simple index answer) nor OSV (``https://api.osv.dev``, whose
name does not resolve there). That is checked first, said in the log
by name, and the run goes on "NOT AUDITED" rather than "no vulnerabilities".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request

# Advisory id -> why it does not apply. Empty: nothing is waived.
IGNORED: dict[str, str] = {}

# Each service pip-audit can use, and a request that proves it answers.
SERVICES = {
    # The per-release page pip-audit reads (a mirror may serve /pypi/NAME/json but not this).
    "pypi": ("PyPI's JSON API", "https://pypi.org/pypi/pip/24.0/json", None),
    "osv": ("OSV", "https://api.osv.dev/v1/query",
            b'{"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "23.0"}'),
}


def reachable(url: str, body: bytes | None) -> str | None:
    """None if ``url`` answers 200, else what happened instead."""
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def verdict(report: dict[str, object]) -> int:
    dependencies = report.get("dependencies", [])
    assert isinstance(dependencies, list)
    skipped = [d for d in dependencies if "skip_reason" in d]
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])
             if v["id"] not in IGNORED]
    print(f"pip-audit: {len(dependencies)} dependencies, "
          f"{len(dependencies) - len(skipped)} audited, {len(skipped)} could not be audited, "
          f"{len(found)} known vulnerabilities")
    for name, version, vuln in found:
        fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
        print(f"  VULNERABLE {name} {version}: {vuln['id']} (fixed in: {fixed})")
    for dependency in skipped:
        print(f"  NOT AUDITED {dependency['name']}: {dependency['skip_reason']}")
    if not dependencies:
        print("  the report lists no dependencies: nothing was audited")
    return 1 if found or skipped or not dependencies else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True, help="the pip-audit executable")
    parser.add_argument("--requirements", required=True, help="the exported, hashed lock")
    args = parser.parse_args()

    failures = {name: reachable(url, body) for name, (_, url, body) in SERVICES.items()}
    service = next((name for name, failure in failures.items() if failure is None), None)
    if service is None:
        print("dependencies NOT AUDITED: no vulnerability database is reachable from here:")
        for name, failure in failures.items():
            label, url, _ = SERVICES[name]
            print(f"  {label} ({url}): {failure}")
        return 0

    result = subprocess.run(
        [args.pip_audit, "--requirement", args.requirements, "--require-hashes",
         "--disable-pip", "--vulnerability-service", service, "--format", "json",
         "--progress-spinner", "off"],
        capture_output=True, text=True, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit produced no report (exit {result.returncode}) although "
              f"{SERVICES[service][0]} answers: failing")
        print(result.stderr[-2000:])
        return 1
    print(f"audited against {SERVICES[service][0]}")
    return verdict(report)


if __name__ == "__main__":
    sys.exit(main())
