"""The doctor over what the composition root built: its clients, its legacy source, its probe
credential, its HTTP pool. The entry points (the CLI, the demo) call `diagnose`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from watchtower.doctor import Finding, failed, summary
from watchtower.doctor.examine import examine

if TYPE_CHECKING:
    from watchtower.runtime import Watchtower


def diagnose(wt: Watchtower, *, as_json: bool = False) -> tuple[list[Finding], str]:
    """The findings, and their text: one line each and the summary, or one JSON document."""
    assert wt.aws is not None, "the composition root makes the clients"
    findings = examine(
        wt.settings,
        wt.aws,
        http=wt.http,
        legacy_sql=wt.sources.legacy_sql,
        credential=wt.probe_credential,
        clock=wt.clock,
    )
    if as_json:
        document = {
            "ok": not failed(findings),
            "summary": summary(findings),
            "findings": [f.as_json() for f in findings],
        }
        return findings, json.dumps(document, indent=2)
    return findings, "\n".join([*(f.line() for f in findings), "", summary(findings)])
