"""Server-side SVG for the cutover pages: one small chart per criterion, and the evidence
timeline with its gaps. Pure.

Built from the documents' plain data, so a frozen report draws the charts it was signed with.
Colours are SVG presentation attributes, not `style`: the pages run under a CSP without
'unsafe-inline', and an exported file draws the same with no stylesheet. Every text and
attribute value is escaped (markupsafe), so templates place the markup without `|safe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from watchtower.cutover.model import parse_iso
from watchtower.svg import join, markup, path, runs

COLOURS = {
    "ok": "#2da44e",
    "breach": "#cf222e",
    "gap": "#8c959f",
    "pending": "#eaeef2",
}
LINE_COLOURS = ("#0969da", "#8250df", "#bc4c00")
THRESHOLD = "#cf222e"
AXIS = "#8c959f"


def _fmt(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def criterion_chart(criterion: Mapping[str, Any], window: Mapping[str, Any]) -> Markup:
    """The criterion's series across the whole window; a gap where a slot had no reading."""
    width, height, left, bottom, top = 300, 70, 34, 14, 6
    plot_w, plot_h = width - left - 4, height - bottom - top
    chart = criterion["chart"]
    duration = max(float(window["duration_seconds"]), 1.0)
    values = [v for line in chart["lines"] for _, v in line["points"] if v is not None]
    threshold = chart.get("threshold")
    low = min([*values, threshold if threshold is not None else 0.0, 0.0])
    high = max([*values, threshold if threshold is not None else 0.0, 1e-9])
    if criterion["name"] == "upload_success" and values:
        low = min(min(values), (threshold or 100) - 0.2)  # a ratio near 100%: zoom in
        high = 100.0
    if high - low < 1e-6:
        high = low + 1.0  # a flat line of zeros: an axis from 0 to 1, not to 1e-9
    span = high - low

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), duration) / duration

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, low), high) - low) / span)

    parts = [
        markup(
            '<line x1="{l}" x2="{r}" y1="{b}" y2="{b}" stroke="{c}" stroke-width="1"/>',
            l=left,
            r=width - 4,
            b=height - bottom,
            c=AXIS,
        ),
        markup(
            '<text x="{x}" y="{y:.1f}" font-size="9" text-anchor="end" fill="{c}">{t}</text>',
            x=left - 3,
            y=top + 8,
            c=AXIS,
            t=_fmt(high),
        ),
        markup(
            '<text x="{x}" y="{y}" font-size="9" text-anchor="end" fill="{c}">{t}</text>',
            x=left - 3,
            y=height - bottom,
            c=AXIS,
            t=_fmt(low),
        ),
    ]
    last = int(duration // 3600)
    for hour in range(0, last + 1, 6):
        parts.append(
            markup(
                '<text x="{x:.1f}" y="{y}" font-size="9" text-anchor="{a}" fill="{c}">{t}h</text>',
                x=x(hour * 3600),
                y=height - 2,
                a="end" if hour == last else "start" if hour == 0 else "middle",
                c=AXIS,
                t=hour,
            )
        )
    if threshold is not None:
        parts.append(
            markup(
                '<line x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}" stroke="{c}" '
                'stroke-dasharray="4 3" stroke-width="1"><title>threshold {t}</title></line>',
                l=left,
                r=width - 4,
                y=y(threshold),
                c=THRESHOLD,
                t=_fmt(threshold),
            )
        )
    for n, line in enumerate(chart["lines"]):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        dash = ' stroke-dasharray="2 2"' if n else ""
        for run in runs(line["points"], x, y):
            if len(run) == 1:
                parts.append(
                    markup(
                        '<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" fill="{c}"/>',
                        x=run[0][0],
                        y=run[0][1],
                        c=colour,
                    )
                )
            else:
                parts.append(
                    markup(
                        '<path d="{d}" fill="none" stroke="{c}" stroke-width="1.4"'
                        + dash
                        + "><title>{label}</title></path>",
                        d=path(run),
                        c=colour,
                        label=line["label"],
                    )
                )
    labels = ", ".join(line["label"] for line in chart["lines"])
    summary = f"{criterion['title']}: {labels} ({chart['unit']}) over the window"
    if threshold is not None:
        summary += f"; threshold {_fmt(threshold)}"
    return markup(
        '<svg class="cutover-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="{label}"><title>{label}</title>{body}</svg>',
        w=width,
        h=height,
        label=summary,
        body=join(parts),
    )


def timeline_chart(document: Mapping[str, Any]) -> Markup:
    """Every slot of the window, coloured by what its evidence says: ok, breach, gap, pending."""
    width, height, bar = 720, 40, 22
    window = document["window"]
    start = parse_iso(window["opened_at"])
    duration = max(float(window["duration_seconds"]), 1.0)

    def x(moment: str) -> float:
        return (
            width * min(max((parse_iso(moment) - start).total_seconds(), 0.0), duration) / duration
        )

    parts = []
    for seg in document["timeline"]:
        x0, x1 = x(seg["start"]), x(seg["end"])
        tip = f"{seg['start']} to {seg['end']}: {seg['state']}"
        if seg["note"]:
            tip += f" ({seg['note']})"
        parts.append(
            markup(
                '<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{h}" fill="{c}">'
                "<title>{tip}</title></rect>",
                x=x0,
                w=max(x1 - x0, 0.8),
                h=bar,
                c=COLOURS.get(seg["state"], COLOURS["pending"]),
                tip=tip,
            )
        )
    for hour in range(0, int(duration // 3600) + 1, 3):
        at = width * hour * 3600 / duration
        anchor = "start" if hour == 0 else "end" if at >= width - 1 else "middle"
        parts.append(
            markup(
                '<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}" stroke="{c}"/>'
                '<text x="{x:.1f}" y="{ty}" font-size="10" text-anchor="{a}" fill="{c}">'
                "{t}h</text>",
                x=min(at, width - 0.5),
                y0=bar,
                y1=bar + 4,
                ty=height - 2,
                a=anchor,
                c=AXIS,
                t=hour,
            )
        )
    counts = {
        s: sum(seg["slots"] for seg in document["timeline"] if seg["state"] == s) for s in COLOURS
    }
    label = (
        f"Evidence timeline: {counts['ok']} slots with complete evidence, {counts['breach']} with "
        f"a breach, {counts['gap']} gaps, {counts['pending']} still to come"
    )
    return markup(
        '<svg class="cutover-timeline" viewBox="0 0 {w} {h}" width="100%" height="{h}" '
        'preserveAspectRatio="none" role="img" aria-label="{label}"><title>{label}</title>'
        "{body}</svg>",
        w=width,
        h=height,
        label=label,
        body=join(parts),
    )


def legend() -> Markup:
    items = [
        markup(
            '<span class="legend-item"><svg width="12" height="12" aria-hidden="true">'
            '<rect width="12" height="12" fill="{c}"/></svg> {t}</span>',
            c=colour,
            t=text,
        )
        for colour, text in (
            (COLOURS["ok"], "evidence complete"),
            (COLOURS["breach"], "a criterion breached"),
            (COLOURS["gap"], "gap (no sample, or a source unreadable)"),
            (COLOURS["pending"], "still to come"),
        )
    ]
    return join(items)
