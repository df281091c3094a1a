"""Server-rendered SVG for the status page: latency lines, 90-day bars, state glyphs. Pure.

Every function returns markup built here, with every piece of text and every attribute value
escaped, so templates can place it without `|safe`. Colours come from CSS classes (the page's
stylesheet), never from inline styles: the page runs under `style-src 'self'`.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup

from watchtower.figures import ago, floored_percent, rough_duration, seconds
from watchtower.status.history import HOUR, Day, DayState
from watchtower.status.latency import StepLatency
from watchtower.status.states import ComponentState, Feed, SourceState, State
from watchtower.svg import join, markup, path, runs


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _escaped(text: str) -> Markup:
    """Markup from text whose every interpolated value went through `_e` (the hot path)."""
    return Markup(text)  # noqa: S704  (callers escape each value with _e)


# -- glyphs ------------------------------------------------------------------------------------

# A distinct shape per state, so the state reads without colour: check in a circle, triangle,
# octagon with a cross, diamond with a question mark, clock, dashed ring.
_GLYPHS = {
    State.OK: '<circle cx="8" cy="8" r="7.5"/>'
    '<path d="M4.4 8.3l2.4 2.4 4.8-5" fill="none" stroke="#fff" stroke-width="1.8" '
    'stroke-linecap="round" stroke-linejoin="round"/>',
    State.WARNING: '<path d="M8 .8l7.6 13.7H.4z"/>'
    '<path d="M8 5.6v4.3" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/>'
    '<circle cx="8" cy="12.3" r="1" fill="#fff"/>',
    State.CRITICAL: '<path d="M5 .5h6l4.5 4.5v6L11 15.5H5L.5 11V5z"/>'
    '<path d="M5.4 5.4l5.2 5.2M10.6 5.4l-5.2 5.2" stroke="#fff" stroke-width="1.8" '
    'stroke-linecap="round"/>',
    State.UNKNOWN: '<path d="M8 .3L15.7 8 8 15.7.3 8z"/>'
    '<path d="M6.2 6.3a1.9 1.9 0 1 1 2.6 1.7c-.6.3-.8.6-.8 1.2v.4" fill="none" stroke="#fff" '
    'stroke-width="1.5" stroke-linecap="round"/><circle cx="8" cy="11.6" r=".9" fill="#fff"/>',
    State.STALE: '<circle cx="8" cy="8" r="6.6" fill="none" stroke="currentColor" '
    'stroke-width="1.8"/><path d="M8 4.2V8l2.6 1.8" fill="none" stroke="currentColor" '
    'stroke-width="1.8" stroke-linecap="round"/>',
    State.NO_DATA: '<circle cx="8" cy="8" r="6.6" fill="none" stroke="currentColor" '
    'stroke-width="1.6" stroke-dasharray="2.6 2"/><path d="M5 8h6" stroke="currentColor" '
    'stroke-width="1.8" stroke-linecap="round"/>',
}


def glyph(state: State) -> Markup:
    """The state's shape, 1em square, in the current text colour; decorative (the label says it)."""
    return _GLYPH_MARKUP[state]


_GLYPH_MARKUP = {  # built once: the page places one per component and per source
    state: markup(
        '<svg class="glyph" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" '
        'focusable="false" fill="currentColor">{}</svg>',
        markup(shape),
    )
    for state, shape in _GLYPHS.items()
}


@functools.lru_cache(maxsize=64)
def badge(state: State, cls: str = "badge") -> Markup:
    """The state's glyph and label, as the page's `badge` macro draws it."""
    return _escaped(
        f'<span class="{_e(cls)} state-{_e(state.value)}">{_GLYPH_MARKUP[state]}'
        f'<span class="label">{_e(state.label)}</span></span>'
    )


def when(moment: datetime | None, now: datetime) -> Markup:
    """A `<time>` saying how long ago `moment` was, its exact time in the tooltip; or 'never'."""
    if moment is None:
        return Markup("never")
    return _escaped(f"{_time_open(moment)}{_e(ago(moment, now))}</time>")


@functools.lru_cache(maxsize=4096)
def _time_open(moment: datetime) -> str:
    """A moment's `<time>` tag, built once per moment (the page shows the same ones until new
    results come). An ISO time and a fixed strftime format are digits and separators only:
    nothing to escape."""
    return (
        f'<time datetime="{moment.isoformat()}" title="{moment.strftime("%Y-%m-%d %H:%M:%S UTC")}">'
    )


def source_cells(source: SourceState, now: datetime) -> Markup:
    """A source's cells in the "Components now" table, built here rather than by template
    macros: at 500 sources the macros were most of the page's render time."""
    title, every = _feed_parts(source.feed)
    return _escaped(
        _source_head(source.state, title, source.reason, source.figure or "—")
        + f"{when(source.observed_at, now)}{every}</td>"
    )


@functools.lru_cache(maxsize=4096)
def _source_head(state: State, title: str, reason: str, figure: str) -> str:
    """A source's cells up to its `<time>`, escaped once per state and words: they change only
    with its newest result (or, while it is stale, its age), unlike the time ago."""
    return (
        f'<td class="source">{badge(state, "mini")} {title}\n'
        f'        <td class="reason">{_e(reason)}</td>\n'
        f'        <td class="figure">{_e(figure)}</td>\n'
        f'        <td class="checked">'
    )


def component_rows(component: ComponentState, now: datetime) -> Markup:
    """A component's rows in the "Components now" table (its `<tbody>`), built here: a Jinja
    loop per source was most of the template's time at 500 sources."""
    c = component
    covers = f'<span class="covers">{_e(c.component.covers)}</span>' if c.component.covers else ""
    head = (
        f'\n        <th scope="rowgroup" rowspan="{len(c.sources) or 1}" class="component-cell">'
        f"\n          {badge(c.state)}"
        f'\n          <span class="component-name">{_e(c.component.title)}</span>{covers}'
        "\n        </th>"
    )
    if not c.sources:
        rows = [f'\n      <tr>{head}\n        <td class="reason" colspan="4">{_e(c.reason)}</td>']
    else:
        rows = [
            f'\n      <tr class="source-{_e(s.state.value)}">{head if n == 0 else ""}'
            f"\n        {source_cells(s, now)}"
            for n, s in enumerate(c.sources)
        ]
    return _escaped(
        f'<tbody class="component state-{_e(c.state.value)}" id="component-{_e(c.component.id)}">'
        + "\n      </tr>".join(rows)
        + "\n      </tr>\n    </tbody>"
    )


@functools.lru_cache(maxsize=4096)
def _feed_parts(feed: Feed) -> tuple[str, str]:
    """What a source's row says of its feed, escaped once per feed (it does not change)."""
    return (
        f'<span class="source-title">{_e(feed.title)}</span>\n'
        f'          <span class="source-name">{_e(feed.kind)} <code>{_e(feed.name)}</code>'
        f"</span></td>",
        f'<span class="every">every {_e(rough_duration(feed.interval))}</span>',
    )


# -- 90-day bars -------------------------------------------------------------------------------

_BAR, _GAP, _BAR_HEIGHT = 6, 2, 30


def day_tooltip(day: Day) -> str:
    parts = [f"{day.date.isoformat()}: {day.state.label}"]
    if day.state is not DayState.NO_DATA:
        if day.down_seconds:
            parts.append(f"down about {rough_duration(day.down_seconds)}")
        if day.degraded_seconds:
            parts.append(f"degraded about {rough_duration(day.degraded_seconds)}")
        parts.append(
            f"uptime {floored_percent(day.uptime)} of {rough_duration(day.observed_seconds)} "
            f"observed ({day.coverage:.0%} of the day; the rest had no readings)"
        )
    if day.maintenance_seconds:
        parts.append(
            f"maintenance about {rough_duration(day.maintenance_seconds)} (left out of uptime)"
        )
    if day.unknown:
        parts.append(f"{day.unknown} unknown readings")
    return "; ".join(parts)


def day_bars(days: Sequence[Day], *, label: str, link: str | None = None) -> Markup:
    """One bar per day, oldest left; each bar's tooltip says what happened that day.

    With `link`, each bar is a link to `link` + the day's ISO date (its incident page).
    """
    width = len(days) * (_BAR + _GAP) - _GAP
    counts = {s: sum(1 for d in days if d.state is s) for s in DayState}
    summary = (
        f"{label}, last {len(days)} days: {counts[DayState.DOWN]} down, "
        f"{counts[DayState.DEGRADED]} degraded, {counts[DayState.OPERATIONAL]} operational, "
        f"{counts[DayState.NO_DATA]} without data"
    )
    bars = [_bar(n, day, link) for n, day in enumerate(days)]
    return markup(
        '<svg class="days" viewBox="0 0 {w} {h}" preserveAspectRatio="none" role="img" '
        'aria-label="{label}">{bars}</svg>',
        w=width,
        h=_BAR_HEIGHT,
        label=summary,
        bars=_escaped("".join(bars)),
    )


@functools.lru_cache(maxsize=16384)
def _bar(n: int, day: Day, link: str | None) -> str:
    """One day's bar, escaped; built once per position, day and link: a closed day's figures
    (and so its bar) do not change, so later renders join cached strings (today's is new)."""
    x = n * (_BAR + _GAP)
    # No data: a short bar, so an empty day differs from a bad one by shape, not colour.
    y = _BAR_HEIGHT * 2 / 3 if day.state is DayState.NO_DATA else 0
    bar = (
        f'<rect class="day day-{_e(day.state.value)}" x="{x}" y="{y:.0f}" width="{_BAR}" '
        f'height="{_BAR_HEIGHT - y:.0f}" rx="1.5"><title>{_e(day_tooltip(day))}</title></rect>'
    )
    if link is not None:
        bar = f'<a href="{_e(link + day.date.isoformat())}">{bar}</a>'
    return bar


# -- line charts -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Line:
    label: str
    css: str  # a class of the stylesheet: its stroke colour
    points: Sequence[tuple[datetime, float | None]]


_W, _H = 360, 160
_LEFT, _RIGHT, _TOP, _BOTTOM = 46, 10, 10, 22


def axis_seconds(value: float) -> str:
    """Axis labels: '0', '250 ms', '1 s', '2.5 s'."""
    if value == 0:
        return "0"
    if value < 1:
        return f"{value * 1000:g} ms"
    return f"{value:g} s"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (> 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def line_chart(
    *,
    title: str,
    lines: Sequence[Line],
    start: datetime,
    end: datetime,
    threshold: tuple[float, str] | None = None,
) -> Markup:
    """Seconds over time: one path per line (gaps where a point is None), hours on the x axis."""
    values = [v for line in lines for _, v in line.points if v is not None]
    top = max([*values, threshold[0] if threshold else 0.0, 0.001])
    y_max = nice_ceiling(top * 1.05)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return _LEFT + plot_w * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - min(value, y_max) / y_max)

    parts = [markup("<title>{}</title>", title)]
    for n in range(5):
        value = y_max * n / 4
        parts.append(
            markup(
                '<line class="grid" x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}"/>'
                '<text class="axis" x="{tx}" y="{ty:.1f}" text-anchor="end">{text}</text>',
                l=_LEFT,
                r=_W - _RIGHT,
                y=y(value),
                tx=_LEFT - 5,
                ty=y(value) + 3.5,
                text=axis_seconds(value),
            )
        )
    marks = [at for at, _ in (lines[0].points if lines else []) if at.hour % 6 == 0]
    for at in marks:
        parts.append(
            markup(
                '<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{b}" y2="{b4}"/>'
                '<text class="axis" x="{x:.1f}" y="{ty}" text-anchor="middle">{text}</text>',
                x=x(at),
                b=_H - _BOTTOM,
                b4=_H - _BOTTOM + 4,
                ty=_H - 6,
                text=at.strftime("%H:%M"),
            )
        )
    parts.append(
        markup(
            '<line class="baseline" x1="{l}" x2="{r}" y1="{b}" y2="{b}"/>',
            l=_LEFT,
            r=_W - _RIGHT,
            b=_H - _BOTTOM,
        )
    )
    if threshold is not None:
        level, label = threshold
        parts.append(
            markup(
                '<line class="threshold" x1="{l}" x2="{r}" y1="{y:.1f}" y2="{y:.1f}"/>'
                '<text class="threshold-label" x="{tx}" y="{ty:.1f}" text-anchor="end">'
                "{text}</text>",
                l=_LEFT,
                r=_W - _RIGHT,
                y=y(level),
                tx=_W - _RIGHT - 2,
                ty=y(level) - 3,
                text=label,
            )
        )
    # A point sits in the middle of its hour.
    points = lines[0].points if lines else []
    half = (points[1][0] - points[0][0]) / 2 if len(points) > 1 else timedelta(0)
    for line in lines:
        for run in runs(line.points, lambda at: x(at + half), y):
            if len(run) == 1:
                parts.append(
                    markup(
                        '<circle class="{c}" cx="{x:.1f}" cy="{y:.1f}" r="2.2"/>',
                        c=line.css,
                        x=run[0][0],
                        y=run[0][1],
                    )
                )
            else:
                parts.append(markup('<path class="{c}" d="{d}"/>', c=line.css, d=path(run)))
    return markup(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">{body}</svg>',
        w=_W,
        h=_H,
        label=title,
        body=join(parts),
    )


def latency_chart(series: StepLatency, *, start: datetime) -> Markup:
    """One probe step's P50 and P95 per hour, with its warning threshold when it has one."""
    return line_chart(
        title=f"{series.probe} {series.step}: P50 and P95 per hour, last {len(series.points)} h",
        lines=[
            Line(label="P50", css="line-p50", points=[(p.start, p.p50) for p in series.points]),
            Line(label="P95", css="line-p95", points=[(p.start, p.p95) for p in series.points]),
        ],
        start=start,
        end=start + HOUR * len(series.points),
        threshold=(series.threshold, f"warning {seconds(series.threshold)}")
        if series.threshold is not None
        else None,
    )
