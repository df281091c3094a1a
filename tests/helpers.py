"""Test helpers: generated images."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (640, 480),
    color: tuple[int, ...] = (200, 40, 90),
    **save: Any,
) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    image = Image.new(mode, size, color)
    # A few distinct pixels so every generated image has its own bytes.
    for x in range(0, size[0], max(1, size[0] // 7)):
        image.putpixel((x, x % size[1]), tuple(255 - c for c in color))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()
