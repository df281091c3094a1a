"""Domain records of the image core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    image_id: str
    user_id: str
    created_at: datetime
    content_type: str
    size_bytes: int
    width: int
    height: int
    original_key: str
    thumbnail_key: str
    thumbnail_content_type: str
    thumbnail_width: int
    thumbnail_height: int
    sha256: str
    synthetic: bool = False


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[ImageRecord]
    next_cursor: str | None
