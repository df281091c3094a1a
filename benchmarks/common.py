"""Shared by the benchmarks: percentiles, figures beside their baselines, printing, test photos."""

from __future__ import annotations

import functools
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Dummy credentials: every benchmark talks to the moto server on loopback, never to AWS.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


def use_dummy_aws_credentials() -> None:
    """Point this process's boto3 at dummy credentials (real ones must never reach moto)."""
    os.environ.update(AWS_ENVIRONMENT)
    for name in _AWS_UNSET:
        os.environ.pop(name, None)


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), interpolated between the closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def timed(call: Callable[[], object]) -> float:
    """Milliseconds that `call()` took, wall clock."""
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


class Budget:
    """A time bound for a measuring loop: the run stays bounded even on a slow machine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() > self._deadline


# -- who used the cores ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # After "pid (comm)", the fields run from the 3rd on: utime is the 14th, stime the 15th.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each named process used over a block, beside the wall time and the cores.

    On a 2-core machine shared by the server under test, its dependencies and the client, this
    says who the cores went to, and whether the client itself was the limit.
    """

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def __enter__(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._started
        self.used = {
            name: cpu_seconds(pid) - self._before[name] for name, pid in self.processes.items()
        }

    def share(self, name: str) -> float:
        """`name`'s part of the CPU time all the measured processes used, in percent."""
        total = sum(self.used.values())
        return self.used[name] / total * 100 if total else math.nan

    def describe(self) -> str:
        cores = os.cpu_count() or 1
        parts = ", ".join(
            f"{name} {used:.1f} s ({self.share(name):.0f}%)" for name, used in self.used.items()
        )
        busy = sum(self.used.values()) / (self.wall * cores) * 100 if self.wall else math.nan
        return f"CPU over {self.wall:.1f} s wall: {parts}; {busy:.0f}% of {cores} cores"


# -- figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One measured value beside the baseline it is judged against, from the same run."""

    benchmark: str
    name: str
    value: float
    baseline_name: str
    baseline: float
    unit: str = "ms"

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else math.nan

    @property
    def change(self) -> float:
        """Relative change from the baseline, in percent (negative: smaller than the baseline)."""
        return (self.value - self.baseline) / self.baseline * 100 if self.baseline else math.nan


def fmt(value: float, unit: str = "ms") -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "ms":
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:.{digits}f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 94 - len(title)), flush=True)


def note(text: str) -> None:
    print(f"   {text}", flush=True)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A Markdown table, padded so it also reads as plain text."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def figure_rows(figures: Sequence[Figure], *, with_benchmark: bool) -> list[list[str]]:
    rows = []
    for f in figures:
        row = [
            f.name,
            fmt(f.value, f.unit),
            f.baseline_name,
            fmt(f.baseline, f.unit),
            _ratio(f.ratio),
            _change(f.change),
        ]
        rows.append([f.benchmark, *row] if with_benchmark else row)
    return rows


def _ratio(ratio: float) -> str:
    if math.isnan(ratio):
        return "n/a"
    return f"{ratio:.2g}x" if ratio < 0.1 else f"{ratio:.2f}x"


def _change(change: float) -> str:
    if math.isnan(change):
        return "n/a"
    return f"{change:+.1f}%" if change < -99 else f"{change:+.0f}%"


FIGURE_HEADER = ["figure", "value", "baseline", "baseline value", "ratio", "change"]


def print_figures(figures: Sequence[Figure]) -> None:
    print(table(figure_rows(figures, with_benchmark=False), FIGURE_HEADER), flush=True)


# -- test photos --------------------------------------------------------------------------------


@functools.cache
def photo_jpeg(width: int = 4000, height: int = 3000, *, variant: int = 0) -> bytes:
    """A photo-like JPEG (quality 90): smooth gradients under fine grain, with camera EXIF.

    Noise keeps it from compressing to nothing: 4000x3000 comes out at about 3 MB, like a
    12-megapixel phone photo. `variant` gives different bytes for the same size.
    """
    from PIL import Image, ImageDraw, ImageFilter

    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90 + 90 * variant).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    scene = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(scene)
    # A few hard edges, as objects in a photo have.
    for i in range(6):
        x, y = (width * (i * 37 + 11 * variant) // 200) % width, (height * (i * 53) // 300)
        fill = ((80 * i) % 256, (140 + 40 * i) % 256, (200 - 30 * i) % 256)
        draw.ellipse((x, y, x + width // 5, y + height // 4), fill=fill)
    grain = Image.merge(
        "RGB",
        [Image.effect_noise((width, height), 55).filter(ImageFilter.GaussianBlur(0.8))] * 3,
    )
    photo = Image.blend(scene, grain, 0.45)
    exif = Image.Exif()
    exif[0x010F] = "Benchmark"  # Make
    exif[0x0110] = "Synthetic 12MP"  # Model
    exif[0x0112] = 1  # Orientation: as stored
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=90, exif=exif)
    return out.getvalue()
