"""What the server-side SVG of every page shares: escaped markup, and lines broken at gaps. Pure.

Every piece of text and every attribute value is escaped here (markupsafe), so templates place
the markup without `|safe`. The status page's charts (`watchtower.status.charts`) colour with
CSS classes; the cutover pages' (`watchtower.cutover.charts`) with presentation attributes, so an
exported file draws the same without a stylesheet. Both draw their lines with `runs` and `path`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from markupsafe import Markup

T = TypeVar("T")


def markup(template: str, *args: object, **kw: object) -> Markup:
    """Markup from a constant template; every argument is escaped unless it is Markup already."""
    return Markup(template).format(*args, **kw)  # noqa: S704  (a constant template, escaped args)


def join(parts: Sequence[Markup]) -> Markup:
    return Markup("").join(parts)


def runs(
    points: Iterable[tuple[T, float | None]],
    x: Callable[[T], float],
    y: Callable[[float], float],
) -> list[list[tuple[float, float]]]:
    """A line's points in plot coordinates, in runs broken where a value is None (a gap)."""
    out: list[list[tuple[float, float]]] = [[]]
    for at, value in points:
        if value is None:
            out.append([])
        else:
            out[-1].append((x(at), y(value)))
    return [run for run in out if run]


def path(run: Sequence[tuple[float, float]]) -> str:
    """The `d` of a path through a run of two points or more: 'M10.0 20.0 L30.0 40.0'."""
    return "M" + " L".join(f"{px:.1f} {py:.1f}" for px, py in run)
