"""Location metadata removed from an original without re-encoding it: a byte-level edit.

What goes, per format (everything else, the pixels above all, is kept byte for byte):

* JPEG: the GPS IFD of the EXIF segment (APP1 `Exif`): its pointer leaves IFD0 and its entries
  and values are overwritten with zeros, in place, so no other offset moves and orientation,
  camera, date and the EXIF thumbnail stay. XMP segments (APP1, also extended XMP) and the
  Photoshop/IPTC segment (APP13) are dropped whole: both can name the place in many spellings
  (`exif:GPSLatitude`, `photoshop:City`, IPTC 2:90-2:101) that are not vetted one by one.
* PNG: the same edit of the `eXIf` chunk (its CRC recomputed); XMP (`iTXt` `XML:com.adobe.xmp`)
  and ImageMagick's raw profiles (`Raw profile type exif|xmp|iptc|app1`) dropped.
* WebP: the same edit of the `EXIF` chunk; the `XMP ` chunk dropped (RIFF size and the VP8X flag
  updated).
* GIF carries no EXIF; it is stored as sent.

An EXIF block too malformed to edit safely is dropped whole rather than stored with its GPS.
Nothing after a JPEG's first scan (SOS), and no PNG `IDAT` or WebP bitstream chunk, is touched.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable

log = logging.getLogger(__name__)

GPS_IFD = 0x8825
_EXIF = b"Exif\x00\x00"
_XMP = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_PHOTOSHOP = b"Photoshop 3.0\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED_TEXT = (b"XML:com.adobe.xmp", b"Raw profile type")
_WEBP_EXIF_FLAG, _WEBP_XMP_FLAG = 0x08, 0x04
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class _Malformed(Exception):
    pass


def strip_location(data: bytes, content_type: str) -> bytes:
    """`data` without location metadata; `data` itself when there is none to remove."""
    strip = _STRIPPERS.get(content_type)
    return data if strip is None else strip(data)


# -- TIFF (the body of every EXIF block) ----------------------------------------------------------


def scrub_tiff(buf: bytearray, start: int, end: int) -> bool:
    """Remove the GPS IFD of the TIFF structure in `buf[start:end]`, in place, sizes unchanged.

    True when something was removed. Raises _Malformed when the structure cannot be followed.
    """

    if end - start < 8:
        raise _Malformed("too short for a TIFF header")
    order = bytes(buf[start : start + 2])
    if order not in (b"II", b"MM"):
        raise _Malformed("no TIFF byte order")
    endian = "<" if order == b"II" else ">"

    def read(fmt: str, offset: int) -> int:
        size = struct.calcsize(endian + fmt)
        if offset < 0 or start + offset + size > end:
            raise _Malformed(f"offset {offset} is outside the EXIF block")
        value: int = struct.unpack_from(endian + fmt, buf, start + offset)[0]
        return value

    def zero(offset: int, size: int) -> None:
        lo, hi = max(start + offset, start), min(start + offset + size, end)
        if lo < hi:
            buf[lo:hi] = bytes(hi - lo)

    if read("H", 2) != 42:
        raise _Malformed("not a TIFF structure")
    ifd0 = read("I", 4)
    count = read("H", ifd0)
    read("I", ifd0 + 2 + 12 * count)  # the next-IFD offset must be inside too
    gps_entries = [i for i in range(count) if read("H", ifd0 + 2 + 12 * i) == GPS_IFD]
    if not gps_entries:
        return False
    for index in gps_entries:
        _zero_ifd(read, zero, read("I", ifd0 + 2 + 12 * index + 8))
    # Drop the pointers: later entries and the next-IFD offset move up, the freed tail is zeroed.
    table = start + ifd0 + 2
    kept = [
        bytes(buf[table + 12 * i : table + 12 * i + 12])
        for i in range(count)
        if i not in gps_entries
    ]
    next_ifd = bytes(buf[table + 12 * count : table + 12 * count + 4])
    rebuilt = b"".join(kept) + next_ifd
    buf[table : table + 12 * count + 4] = rebuilt + bytes(12 * count + 4 - len(rebuilt))
    struct.pack_into(endian + "H", buf, start + ifd0, len(kept))
    return True


def _zero_ifd(
    read: Callable[[str, int], int], zero: Callable[[int, int], None], offset: int
) -> None:
    """Overwrite the GPS IFD at `offset`: its values stored outside it, then the IFD itself."""
    try:
        count = read("H", offset)
    except _Malformed:
        return  # a pointer to nowhere: removing it is all there is to do
    for i in range(count):
        entry = offset + 2 + 12 * i
        try:
            kind, items = read("H", entry + 2), read("I", entry + 4)
            size = _TYPE_SIZES.get(kind, 1) * items
            if size > 4:
                zero(read("I", entry + 8), size)
        except _Malformed:
            break
    zero(offset, 2 + 12 * count + 4)


def _scrub_or_drop(buf: bytearray, start: int, end: int, where: str) -> bool | None:
    """scrub_tiff's answer, or None when the block must be dropped whole."""
    try:
        return scrub_tiff(buf, start, end)
    except _Malformed as exc:
        log.warning("EXIF in %s is malformed (%s): dropped whole", where, exc)
        return None


# -- JPEG -----------------------------------------------------------------------------------------


def _jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        return data
    buf = bytearray(data)
    dropped: list[tuple[int, int]] = []
    changed = False
    pos = 2
    while pos + 4 <= len(buf):
        if buf[pos] != 0xFF:
            break  # not a marker: leave the rest as it is
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS: the entropy-coded data starts; never touched
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = struct.unpack_from(">H", buf, pos + 2)[0]
        end = pos + 2 + length
        if length < 2 or end > len(buf):
            break
        payload = bytes(buf[pos + 4 : min(end, pos + 4 + 64)])
        if marker == 0xE1 and payload.startswith(_EXIF):
            scrubbed = _scrub_or_drop(buf, pos + 4 + len(_EXIF), end, "a JPEG")
            if scrubbed is None:
                dropped.append((pos, end))
            changed = changed or bool(scrubbed)
        elif (marker == 0xE1 and payload.startswith(_XMP)) or (
            marker == 0xED and payload.startswith(_PHOTOSHOP)
        ):
            dropped.append((pos, end))
        pos = end
    if not changed and not dropped:
        return data
    return _without(buf, dropped)


def _without(buf: bytearray, ranges: list[tuple[int, int]]) -> bytes:
    out, last = bytearray(), 0
    for lo, hi in ranges:
        out += buf[last:lo]
        last = hi
    out += buf[last:]
    return bytes(out)


# -- PNG ------------------------------------------------------------------------------------------


def _png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        return data
    buf = bytearray(data)
    dropped: list[tuple[int, int]] = []
    changed = False
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(buf):
        length = struct.unpack_from(">I", buf, pos)[0]
        kind = bytes(buf[pos + 4 : pos + 8])
        body, end = pos + 8, pos + 12 + length
        if end > len(buf):
            break
        if kind == b"eXIf":
            scrubbed = _scrub_or_drop(buf, body, body + length, "a PNG")
            if scrubbed is None:
                dropped.append((pos, end))
            elif scrubbed:
                crc = zlib.crc32(bytes(buf[pos + 4 : body + length]))
                struct.pack_into(">I", buf, body + length, crc)
                changed = True
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = bytes(buf[body : body + min(length, 80)]).split(b"\x00", 1)[0]
            if keyword.startswith(_PNG_DROPPED_TEXT):
                dropped.append((pos, end))
        elif kind == b"IEND":
            break
        pos = end
    if not changed and not dropped:
        return data
    return _without(buf, dropped)


# -- WebP -----------------------------------------------------------------------------------------


def _webp(data: bytes) -> bytes:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    buf = bytearray(data)
    dropped: list[tuple[int, int]] = []
    cleared_flags = 0
    changed = False
    vp8x = None
    pos = 12
    while pos + 8 <= len(buf):
        kind = bytes(buf[pos : pos + 4])
        length = struct.unpack_from("<I", buf, pos + 4)[0]
        body = pos + 8
        end = body + length + (length & 1)
        if body + length > len(buf):
            break
        if kind == b"VP8X" and length >= 1:
            vp8x = body
        elif kind == b"EXIF":
            tiff = body + len(_EXIF) if bytes(buf[body : body + 6]) == _EXIF else body
            scrubbed = _scrub_or_drop(buf, tiff, body + length, "a WebP")
            if scrubbed is None:
                dropped.append((pos, min(end, len(buf))))
                cleared_flags |= _WEBP_EXIF_FLAG
            changed = changed or bool(scrubbed)
        elif kind == b"XMP ":
            dropped.append((pos, min(end, len(buf))))
            cleared_flags |= _WEBP_XMP_FLAG
        pos = end
    if not changed and not dropped:
        return data
    if vp8x is not None:
        buf[vp8x] &= ~cleared_flags & 0xFF
    out = bytearray(_without(buf, dropped))
    struct.pack_into("<I", out, 4, len(out) - 8)
    return bytes(out)


_STRIPPERS = {"image/jpeg": _jpeg, "image/png": _png, "image/webp": _webp}
