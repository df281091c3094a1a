"""Markdown renderings of the documents: for a pull request, a wiki page, a terminal. Pure.

Every piece of text from outside (names, comments, reasons, alert names) is escaped, so a
comment cannot turn into a link, an image or a broken table in the page it is pasted into.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from watchtower import figures as fig
from watchtower.cutover.model import parse_iso

STATE_LABELS = {
    "collecting": "COLLECTING EVIDENCE",
    "ready": "READY FOR SIGN-OFF",
    "signed": "SIGNED",
    "failed": "FAILED",
    "not_met": "NOT MET",
    "insufficient_coverage": "INSUFFICIENT COVERAGE",
    "rolled_back": "ROLLED BACK",
    "abandoned": "ABANDONED",
}
STATUS_LABELS = {
    "ok": "✅ ok",
    "failing": "⚠️ failing",
    "failed": "❌ failed",
    "unknown": "❔ unknown",
}
MAX_EVENTS = 12
VIA_LABELS = {
    "session": "login form",
    "token": "bearer token",
    "basic": "basic auth",
    "proxy": "single sign-on (trusted proxy)",
}

_ALWAYS = re.compile(r"([\\`*\[\]<|])")
_LOOSE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def esc(text: Any) -> str:
    """Plain text, safe inside Markdown (and inside a table cell), and still readable: only what
    Markdown would act on is escaped (an underscore inside a word is left alone)."""
    if text is None:
        return "—"
    out = _ALWAYS.sub(r"\\\1", " ".join(str(text).split()))
    out = _LOOSE_UNDERSCORE.sub(r"\\_", out).replace("~~", r"\~\~")
    return "\\" + out if out[:1] in ("#", ">", "-", "+") else out


def when(value: str | None) -> str:
    if not value:
        return "—"
    return parse_iso(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def signed_in(signoff: Mapping[str, Any]) -> str:
    """Who signed (the login) and how they signed in, as the report says it."""
    via = signoff.get("via")
    how = VIA_LABELS.get(via, via) if via else "sign-in method not recorded"
    return f"{signoff.get('user') or '—'} ({how})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def window_markdown(
    document: Mapping[str, Any],
    *,
    sha256: str,
    frozen: bool,
    verification: Mapping[str, Any] | None = None,
) -> str:
    w = document["window"]
    v = document["verdict"]
    cov = document["coverage"]
    out = [
        "# REHEARSAL: cutover sign-off: dual-write disabled (Story 6.1)"
        if document.get("rehearsal")
        else "# Cutover sign-off: dual-write disabled (Story 6.1)",
        "",
        *([f"> **{esc(document['rehearsal'])}**", ""] if document.get("rehearsal") else []),
        f"**{STATE_LABELS.get(v['state'], v['state'])}** — {esc(v['headline'])}",
        "",
    ]
    if not frozen:
        out += [
            "> **DRAFT** — not signed: judged at "
            f"{when(document['judged_at'])}; the figures change until the window is signed.",
            "",
        ]
    confirmed = f"; confirmed by {esc(w['confirmed_by'])}" if w.get("confirmed_by") else ""
    out += _table(
        ["", ""],
        [
            ["Window", f"`{w['id']}`"],
            [
                "Dual-write turned off",
                f"{when(w['opened_at'])} by {esc(w['opened_by'])} (via {esc(w['via'])}{confirmed})",
            ],
            ["Window ends", f"{when(w['ends_at'])} ({fig.duration(w['duration_seconds'])})"],
            [
                "Evidence coverage",
                f"{fig.percent(cov['ratio'])} ({fig.percent(cov['required'], 0)} required to sign)",
            ],
            ["Judged at", when(document["judged_at"])],
        ]
        + (
            [
                [
                    "Closed",
                    f"{when(w['closed_at'])}: {esc(w['close_reason'])} by {esc(w['closed_by'])}"
                    + (f" — {esc(w['close_comment'])}" if w.get("close_comment") else ""),
                ]
            ]
            if w.get("closed_at")
            else []
        ),
    )
    out += ["", "## Criteria", ""]
    out += _table(
        ["Criterion", "Story", "Status", "Figure", "Threshold"],
        [
            [
                esc(c["title"]),
                esc(c["story"]),
                STATUS_LABELS.get(c["status"], c["status"]),
                esc(c["figure"]),
                esc(c["threshold"]),
            ]
            for c in document["criteria"]
        ],
    )
    out.append("")
    for c in document["criteria"]:
        out.append(f"- **{esc(c['title'])}**: {esc(c['detail'])}")
        events = c.get("events") or []
        for event in events[:MAX_EVENTS]:
            out.append(f"  - {when(event['at'])}: {esc(event['text'])}")
        if len(events) > MAX_EVENTS:
            out.append(f"  - … and {len(events) - MAX_EVENTS} more")
    out += ["", "## Evidence timeline", ""]
    notable = [s for s in document["timeline"] if s["state"] in ("gap", "breach")]
    if not notable:
        out.append("Every slot so far has complete evidence and no breach.")
    for seg in notable:
        kind = "Gap" if seg["state"] == "gap" else "Breach"
        out.append(
            f"- **{kind}** {when(seg['start'])} to {when(seg['end'])} "
            f"({seg['slots']} slot{'' if seg['slots'] == 1 else 's'}): {esc(seg['note'])}"
        )
    out += backfilled_section(document)
    pre = document.get("preflight")
    out += ["", "## Pre-flight (dual-write, before the flip)", ""]
    if pre:
        gate = pre.get("gate") or {}
        out.append(
            f"Over {pre.get('days')} days to {when(pre.get('end'))}: "
            f"{fig.percent(pre.get('success_ratio'), 3)} of {pre.get('attempts', 0):,.0f} "
            f"dual-writes succeeded; gate {'passed' if gate.get('passed') else 'FAILED'}. "
            f"{esc(pre.get('decision'))} (report sha256 `{pre.get('sha256')}`)"
        )
    else:
        out.append("No pre-flight report was recorded in the day before the flip.")
    rollback = document["rollback"]
    out += ["", "## Rollback plan", "", f"Runbook: `{rollback['runbook']}` ({rollback['url']})", ""]
    out += [f"{n}. {esc(step)}" for n, step in enumerate(rollback["steps"], 1)]
    out += ["", "## Sign-offs", ""]
    if document["signoffs"]:
        out += _table(
            ["Name", "Role", "Signed in as", "Signed at", "Comment", "Evidence sha256"],
            [
                [
                    esc(s["name"]),
                    esc(s["role"]),
                    esc(signed_in(s)),
                    when(s["at"]),
                    esc(s["comment"]) if s["comment"] else "—",
                    f"`{s['evidence_hash'][:16]}…`",
                ]
                for s in document["signoffs"]
            ],
        )
    else:
        out.append("No sign-off yet.")
    if document["missing_roles"]:
        out += ["", "Still to sign: " + ", ".join(esc(r) for r in document["missing_roles"]) + "."]
    out += ["", "---", ""]
    if frozen:
        out.append(
            f"Frozen report. Content hash (sha256 of its canonical JSON): `{sha256}`. "
            "`watchtower cutover report --format json` prints the document; its sha256 must "
            "match."
        )
        if verification is not None:
            if verification["ok"]:
                out.append("Verified on read: the content matches its hash and the audit log.")
            else:
                out.append("**VERIFICATION FAILED** — this report was changed after it was signed:")
                out += [f"- {esc(p)}" for p in verification["problems"]]
    else:
        out.append(f"Draft content hash: `{sha256}` (changes with every judgement until signed).")
    return "\n".join(out) + "\n"


def backfilled_section(document: Mapping[str, Any]) -> list[str]:
    """The slots Watchtower missed and read back later from the sources' history."""
    slots = (document.get("coverage") or {}).get("backfilled") or []
    if not slots:
        return []
    out = ["", "## Backfilled slots", ""]
    out.append(
        f"{len(slots)} slot{'' if len(slots) == 1 else 's'} Watchtower missed, read back later "
        "from the sources' history and counted in the coverage:"
    )
    out.append("")
    for slot in slots:
        out.append(
            f"- {when(slot['start'])} to {when(slot['end'])}, read back at {when(slot['taken_at'])}"
        )
    sources = {k: v for slot in slots for k, v in slot["sources"].items()}
    out += ["", "Read back from: " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in sources.items())]
    return out


def identity_section(rec: Mapping[str, Any]) -> list[str]:
    """The image ids on one side only: the first 100 of each, and how many in all."""
    if not rec.get("by_identity"):
        return []
    out = ["", "### Differences by image id", ""]
    table = esc(rec.get("legacy_table") or "the legacy table")
    for key, side in (
        ("missing_from_postgres", f"In DynamoDB, missing from {table}"),
        ("missing_from_dynamodb", f"In {table}, missing from DynamoDB"),
    ):
        ids, count = rec.get(key) or [], rec.get(f"{key}_count") or 0
        shown = f" (the first {len(ids)})" if count > len(ids) else ""
        out.append(f"- {side}: {count:,}{shown}" + (":" if ids else ""))
        out += [f"  - `{esc(i)}`" for i in ids]
    return out


def preflight_markdown(document: Mapping[str, Any]) -> str:
    gate = document["gate"]
    rec = document["reconciliation"]
    out = [
        f"# Dual-write monitoring report: last {document['days']} days",
        "",
        f"{when(document['start'])} to {when(document['end'])}; generated "
        f"{when(document['generated_at'])}.",
        "",
        f"**Gate {'PASSED' if gate['passed'] else 'FAILED'}** (dual-write success must be above "
        f"{fig.percent(document['min_success_ratio'], 1)} and the stores must agree)",
        "",
    ]
    out += [f"- {'✅' if c['passed'] else '❌'} {esc(c['text'])}" for c in gate["checks"]]
    out += ["", "## Dual-writes", ""]
    out += _table(
        ["Attempts", "Succeeded", "Failed", "Success rate"],
        [
            [
                f"{document['attempts']:,.0f}",
                f"{document['successes']:,.0f}",
                f"{document['failures']:,.0f}",
                fig.percent(document["success_ratio"], 3),
            ]
        ],
    )
    out += ["", "Failures by reason:", ""]
    reasons = document["failures_by_reason"]
    out += [f"- `{esc(r)}`: {n:,.0f}" for r, n in reasons.items()] or ["- none"]
    out += ["", "## Day by day", ""]
    out += _table(
        ["Day (from)", "Attempts", "Failed", "Success rate"],
        [
            [
                when(d["start"]),
                f"{d['attempts']:,.0f}",
                f"{d['failures']:,.0f}",
                fig.percent(d["success_ratio"], 3),
            ]
            for d in document["daily"]
        ],
    )
    out += ["", "## Reconciliation: images created in the window that still exist", ""]
    out += _table(
        [
            "DynamoDB image records",
            f"{esc(rec.get('legacy_table') or 'the legacy table')} rows",
            "Difference",
            "Upload requests (context)",
        ],
        [
            [
                _count_or_error(rec["dynamodb_images"], rec["dynamodb_error"]),
                _count_or_error(rec["postgres_rows"], rec["postgres_error"]),
                "—" if rec["difference"] is None else f"{rec['difference']:,}",
                "—" if rec["upload_requests"] is None else f"{rec['upload_requests']:,.0f}",
            ]
        ],
    )
    out += [
        "",
        "Deletes are dual-written too (the probe deletes its image after every run), so both "
        "sides count the images that still exist. Successful upload requests count events "
        "(idempotent replays and since-deleted images included) and are shown for context only.",
    ]
    out += identity_section(rec)
    if document.get("metrics_error"):
        out += ["", f"**Metrics could not be read:** {esc(document['metrics_error'])}"]
    out += [f"- note: {esc(n)}" for n in document.get("notes") or []]
    out += ["", "---", "", f"Content hash (sha256 of its canonical JSON): `{document['sha256']}`"]
    return "\n".join(out) + "\n"


def _count_or_error(value: int | None, error: str | None) -> str:
    if value is not None:
        return f"{value:,}"
    return f"unknown ({esc(error)})"


def _placeholder(document: Mapping[str, Any], key: str) -> list[str]:
    item = document["placeholders"][key]
    return [f"> ✎ **{item['text']}** — {esc(item['prompt'])}", ""]


def migration_markdown(document: Mapping[str, Any]) -> str:
    s = document["summary"]
    perf = document["performance"]
    cost = document["cost"]
    out = [
        "# Image service migration: final report (Story 6.5)",
        "",
        f"Generated {when(document['generated_at'])} by Watchtower from its own records. "
        "Sections marked ✎ are for people to write.",
        "",
        "## 1. Executive summary",
        "",
        esc(s["goal"]),
        "",
        f"- Dual-write disabled: {when(s['dual_write_disabled_at'])}"
        if s["dual_write_disabled_at"]
        else "- Dual-write disabled: no signed cutover window yet",
        f"- Cutover window: {esc(s['cutover_headline'])}",
        "- Signed by: " + (", ".join(esc(n) for n in s["signed_by"]) or "nobody yet"),
    ]
    out += [
        f"- {esc(r['metric'])}: {r['before_text']} before, {r['after_text']} after"
        + (f" ({r['change']})" if r["change"] else "")
        for r in s["key_metrics"]
    ]
    out += ["", *_placeholder(document, "business_value")]
    out += ["## 2. Timeline", ""]
    out += _placeholder(document, "milestones")
    if document["timeline"]:
        out += _table(
            ["When", "What", "Who", "Source"],
            [
                [when(t["at"]), esc(t["text"]), esc(t["actor"]) if t["actor"] else "—", t["source"]]
                for t in document["timeline"]
            ],
        )
    else:
        out.append("Watchtower recorded no flag change, pre-flight or sign-off.")
    out += [""] + [f"Not included: {esc(n)}." for n in document["sources_not_included"]]
    out += ["", "## 3. Performance before and after", "", esc(perf["note"]), ""]
    out.append(
        f"Before: {when(perf['before']['start'])} to {when(perf['before']['end'])}; "
        f"after: {when(perf['after']['start'])} to {when(perf['after']['end'])}."
    )
    out.append("")
    out += _table(
        ["Metric", "Before", "After", "Change", "Target"],
        [
            [
                esc(r["metric"]),
                r["before_text"],
                r["after_text"],
                r["change"] or "—",
                esc(r["target"]),
            ]
            for r in perf["rows"]
        ],
    )
    out += [
        "",
        "P95 upper bounds are exact (the smallest published threshold with at most 5% of "
        "requests over it); estimates interpolate inside that bucket. No percentile statistic "
        "is read from CloudWatch.",
    ]
    out += [f"- could not read: {esc(e)}" for e in perf["errors"]]
    out += ["", "## 4. Cost analysis", "", esc(cost["note"]), ""]
    if cost["months"]:
        out += _table(
            ["Month", "Cost", "Period", "By service"],
            [
                [
                    m["start"][:7] + (" (estimated)" if m["estimated"] else ""),
                    f"{m['amount']:,.2f} {m['unit']}",
                    m["period"],
                    ", ".join(f"{esc(k)} {v:,.2f}" for k, v in m["by_service"].items()) or "—",
                ]
                for m in cost["months"]
            ],
        )
        out.append("")
    out += _placeholder(document, "cost_analysis")
    out += ["## 5. Issues encountered and resolutions", ""]
    if document["issues"]:
        out += [
            f"- {when(i['at'])}: {esc(i['text'])} — resolution: ✎ **TO BE FILLED IN**"
            for i in document["issues"]
        ]
    else:
        out.append("Watchtower recorded no failed window, override, rollback or critical alert.")
    if document.get("issues_note"):
        out.append(f"- note: {esc(document['issues_note'])}")
    out += ["", "## 6. Lessons learned", "", "### What went well", ""]
    out += _placeholder(document, "went_well")
    out += ["### What could improve", "", *_placeholder(document, "could_improve")]
    out += ["### Recommendations for future migrations", ""]
    out += _placeholder(document, "recommendations")
    out += ["## 7. Team recognition", ""]
    if document["contributors"]:
        out.append(
            "People Watchtower saw operate the cutover: "
            + ", ".join(esc(n) for n in document["contributors"])
            + "."
        )
        out.append("")
    out += _placeholder(document, "recognition")
    out += ["---", "", f"Content hash (sha256 of its canonical JSON): `{document['sha256']}`"]
    return "\n".join(out) + "\n"
