"""`watchtower doctor`: what will work against the configured account, before the first page.

Per probe, check, runbook action and the cutover: the source it reads, whether the data exists
now (a metric published in the last hours, REPORT lines in the log group in the last hour, the
opt-in CloudFront metrics, the legacy table and its statistics, the function and its alias),
whether the permissions it needs are granted (a read is tried; what changes things is asked of
IAM's policy simulator when that is allowed), and what to do when not. It changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

State = Literal["ok", "missing", "off", "unknown"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    feature: str  # "check dual_write", "probe upload_get", "action lambda.move_alias", "cutover"
    source: str  # what it reads or calls
    state: State  # ok; missing (a configured feature's need); off (not configured); unknown
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.state.upper():8} {self.feature:34} {self.source}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.state != "ok" else text

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def summary(findings: list[Finding]) -> str:
    counts = {s: sum(f.state == s for f in findings) for s in ("ok", "missing", "unknown", "off")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = "everything configured is in place" if not counts["missing"] else "gaps found"
    return f"watchtower doctor: {verdict} ({text})"


def failed(findings: list[Finding]) -> bool:
    """Exit non-zero: something a configured feature needs is missing."""
    return any(f.state == "missing" for f in findings)
