"""Summarise a ``pip-audit --format json`` report; the exit code is CI's verdict.

    pip-audit --path SITE_PACKAGES --format json | python .ci/audit.py

- A known vulnerability in an installed dependency fails CI (exit 1): this service holds
  API tokens and channel credentials, so a vulnerable dependency is upgraded (or the
  advisory is judged not to apply and listed in IGNORED with the reason) before merging.
- A dependency the vulnerability service could not look up is reported, loudly, but does
  not fail CI: from a machine without access to the service every package is skipped,
  and the report must say "not audited" rather than "no vulnerabilities".
"""

from __future__ import annotations

import json
import sys

# Advisory id -> why it does not apply. Empty: nothing is waived.
IGNORED: dict[str, str] = {}


def main() -> int:
    text = sys.stdin.read()
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        print("pip-audit produced no report (could it reach its vulnerability service?)")
        return 0
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])
             if v["id"] not in IGNORED]
    audited = len(dependencies) - len(skipped)
    print(f"pip-audit: {len(dependencies)} dependencies, {audited} audited, "
          f"{len(skipped)} could not be audited, {len(found)} known vulnerabilities")
    for name, version, vuln in found:
        fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
        print(f"  VULNERABLE {name} {version}: {vuln['id']} (fixed in: {fixed})")
    if skipped:
        print("  NOT AUDITED: " + ", ".join(d["name"] for d in skipped))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
