"""Thumbnail of a 12-megapixel JPEG: ours (`images.process`) vs `vipsthumbnail` on the same file.

Three ways, interleaved (A B C A B C ...) so drift hits each alike, median of N runs each:
* ours: `image_core.images.process()`, in process, bytes in memory: validation, the `draft()`
  reduced-scale decode, EXIF orientation, LANCZOS to 400 px, metadata stripped, JPEG q85.
* `vipsthumbnail in.jpg -s 400 -o out.jpg[Q=85,strip]`: a new process each time, as a worker
  shelling out would run it. Its start-up (`vipsthumbnail --version`) is measured on its own and
  subtracted for a "work only" estimate; and one `vipsthumbnail` call on ten copies of the file
  gives the per-file time with the start-up amortised, which needs no subtraction.
* ours without `draft()`: the same steps as `images._thumbnail` with the one `draft()` line left
  out, replicated here (image_core is not changed): the full-size decode it replaced.
"""

from __future__ import annotations

import io
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from benchmarks.common import Budget, Figure, median, note, percentile, photo_jpeg, timed
from image_core import images

NAME = "thumbnail"
SIZE = 400
MAX_PIXELS = 50_000_000
BATCH = 10


def process_without_draft(data: bytes, size: int = SIZE) -> bytes:
    """`images.process` minus the `draft()` call: decode at full size, then downscale."""
    image = Image.open(io.BytesIO(data), formats=list(images.SUPPORTED_FORMATS))
    image.load()
    oriented = ImageOps.exif_transpose(image)
    oriented.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    clean = Image.new(oriented.mode, oriented.size)
    clean.paste(oriented)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=85, optimize=False, progressive=False)
    return out.getvalue()


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (vipsthumbnail), all threads."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(*, quick: bool) -> list[Figure]:
    runs = 7 if quick else 25
    budget = Budget(30 if quick else 90)
    vips = shutil.which("vipsthumbnail")
    data = photo_jpeg(4000, 3000)
    with Image.open(io.BytesIO(data)) as probe:
        note(f"input: {probe.size[0]}x{probe.size[1]} JPEG q90, {len(data) / 1e6:.1f} MB")
    note(f"output: longest side {SIZE} px, JPEG q85, metadata stripped; {runs} runs each")

    def ours() -> None:
        images.process(data, max_pixels=MAX_PIXELS, thumbnail_size=SIZE)

    def no_draft() -> None:
        process_without_draft(data)

    variants = {"ours": ours, "no_draft": no_draft}
    with tempfile.TemporaryDirectory(prefix="bench-thumb-") as tmp:
        if vips:
            variants |= _vips_variants(vips, data, Path(tmp))
        else:
            note("vipsthumbnail not found (apt-get install libvips-tools): no-draft baseline only")
        for call in variants.values():  # warm-up: page cache, Pillow plug-ins, libvips modules
            call()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
        for i in range(runs):
            for name, call in variants.items():
                if name == "vips_batch" and i % 3:
                    continue  # ten files a call: a third of the runs is plenty
                cpu_before = _cpu_seconds()
                samples[name].append(timed(call) / (BATCH if name == "vips_batch" else 1))
                cpu[name] += _cpu_seconds() - cpu_before
            if budget.spent:
                note(f"time budget spent after {i + 1} of {runs} runs")
                break
        if vips:
            with Image.open(Path(tmp) / "out.jpg") as made:
                note(f"vipsthumbnail made {made.size[0]}x{made.size[1]}")
    made_ours = images.process(data, max_pixels=MAX_PIXELS, thumbnail_size=SIZE)
    note(f"ours made {made_ours.thumbnail_width}x{made_ours.thumbnail_height}")
    for name, values in samples.items():
        per_file = BATCH if name == "vips_batch" else 1
        note(
            f"{name:12s} median {median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms"
            f"   min {min(values):6.1f} ms"
            f"   CPU {cpu[name] / len(values) / per_file * 1000:6.1f} ms   n={len(values)}"
        )
    note("(vips_batch: per file, of one vipsthumbnail call on 10 files; CPU: user+system time of")
    note(" this process and its children, per run: above the wall time means several threads)")

    ours_ms = median(samples["ours"])
    figures = [
        Figure(
            benchmark=NAME,
            name="ours, images.process() (median)",
            value=ours_ms,
            baseline_name="ours without draft() (full decode)",
            baseline=median(samples["no_draft"]),
        )
    ]
    if vips:
        startup_ms = median(samples["vips_startup"])
        note(f"vipsthumbnail start-up alone (--version): median {startup_ms:.1f} ms")
        figures += [
            Figure(
                benchmark=NAME,
                name="ours, images.process() (median)",
                value=ours_ms,
                baseline_name="vipsthumbnail, one process per file",
                baseline=median(samples["vips"]),
            ),
            Figure(
                benchmark=NAME,
                name="ours, images.process() (median)",
                value=ours_ms,
                baseline_name="vipsthumbnail minus its start-up",
                baseline=median(samples["vips"]) - startup_ms,
            ),
            Figure(
                benchmark=NAME,
                name="ours, images.process() (median)",
                value=ours_ms,
                baseline_name=f"vipsthumbnail, per file of {BATCH} in one call",
                baseline=median(samples["vips_batch"]),
            ),
        ]
    return figures


def _vips_variants(vips: str, data: bytes, tmp: Path) -> dict[str, Callable[[], object]]:
    """One file per process; start-up alone; ten files in one process (start-up amortised)."""
    source = tmp / "in.jpg"
    source.write_bytes(data)
    single = [vips, str(source), "-s", str(SIZE), "-o", f"{tmp / 'out.jpg'}[Q=85,strip]"]
    # Ten names for the same bytes: libvips caches operations by their arguments.
    batch_dir = tmp / "batch"
    batch_dir.mkdir()
    batch = [batch_dir / f"in{i}.jpg" for i in range(BATCH)]
    for path in batch:
        path.write_bytes(data)
    # A relative -o pattern writes each thumbnail beside its input, as out_in0.jpg ...
    many = [vips, *map(str, batch), "-s", str(SIZE), "-o", "out_%s.jpg[Q=85,strip]"]
    version = subprocess.run([vips, "--version"], capture_output=True, text=True)
    note(f"vipsthumbnail {version.stdout.strip()}: {' '.join(single)}")
    note(f"batch: vipsthumbnail <{BATCH} copies> -s {SIZE} -o 'out_%s.jpg[Q=85,strip]'")

    def run(command: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(command, check=True, capture_output=True)

    return {
        "vips": run(single),
        "vips_startup": run([vips, "--version"]),
        "vips_batch": run(many),
    }
