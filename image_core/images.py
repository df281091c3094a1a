"""Image validation by content and thumbnail generation. Pure: bytes in, bytes out."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from image_core.errors import BadRequest, PayloadTooLarge, UnsupportedImage

# Pillow format name -> (content type, file extension). GIF and animated WebP: first frame.
SUPPORTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}

_QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
MAX_DECODE_BYTES = 128 * 1024 * 1024  # IMAGE_MAX_DECODE_BYTES' default


@dataclass(frozen=True, kw_only=True)
class ProcessedImage:
    content_type: str
    extension: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_content_type: str
    thumbnail_width: int
    thumbnail_height: int


def process(
    data: bytes,
    *,
    max_pixels: int,
    thumbnail_size: int,
    max_decode_bytes: int = MAX_DECODE_BYTES,
    decode_slot: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> ProcessedImage:
    """Validate `data` by its content and make its thumbnail.

    The pixel limit and the decode budget (the memory the decode will hold) are judged from the
    header, before any pixel is decoded, so a decompression bomb costs nothing; the decode itself
    runs inside `decode_slot()` (the process-wide bound on concurrent decodes). A truncated or
    corrupt file raises BadRequest: it is never accepted half-decoded.
    """
    image = _open(data, max_pixels)
    content_type, extension = SUPPORTED_FORMATS[image.format or ""]
    width, height = image.size
    if image.format == "JPEG":
        # Decode at a reduced DCT scale (1/2, 1/4, 1/8) instead of full size: about twice as
        # fast, and the budget below counts the reduced size.
        image.draft("RGB", (thumbnail_size, thumbnail_size))
    cost = decoded_bytes(image, width, height)
    if cost > max_decode_bytes:
        raise PayloadTooLarge(
            f"the image would take {cost} bytes of memory to decode ({width}x{height} pixels, "
            f"{image.mode}); the limit is {max_decode_bytes} bytes",
            code="decode_too_large",
        )
    with decode_slot():
        try:
            thumb, turned = _thumbnail(image, thumbnail_size)
        except (OSError, SyntaxError, ValueError, struct.error) as exc:
            raise BadRequest(
                f"the {image.format} image is truncated or corrupt: {exc}", code="corrupt_image"
            ) from exc
    encoded, thumb_type = _encode(thumb)
    if turned:
        width, height = height, width  # as displayed, like the thumbnail
    return ProcessedImage(
        content_type=content_type,
        extension=extension,
        width=width,
        height=height,
        thumbnail=encoded,
        thumbnail_content_type=thumb_type,
        thumbnail_width=thumb.width,
        thumbnail_height=thumb.height,
    )


def decoded_bytes(image: Image.Image, width: int, height: int) -> int:
    """The memory decoding `image` (opened, not loaded; a JPEG already drafted) will hold.

    Pixels x bands as Pillow holds them: 1 byte a pixel for greyscale; 4 for everything else
    (RGB is kept in 4 bytes, and palette, 1-bit, 16-bit and greyscale-with-alpha images are
    thumbnailed as RGB or RGBA). A progressive JPEG also keeps every DCT coefficient of the full
    size image while it decodes, 2 bytes a sample, whatever the reduced scale.
    """
    drafted_width, drafted_height = image.size
    cost = drafted_width * drafted_height * (1 if image.mode == "L" else 4)
    if image.format == "JPEG" and image.info.get("progressive"):
        layers = getattr(image, "layer", None) or []  # (component, h sampling, v sampling, table)
        h_max = max((layer[1] for layer in layers), default=1) or 1
        v_max = max((layer[2] for layer in layers), default=1) or 1
        samples = (
            sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)
            if layers
            else len(image.getbands())
        )
        cost = max(cost, int(width * height * samples * 2))
    return cost


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise BadRequest("the file is empty", code="empty_file")
    try:
        # Pillow's own bomb guard warns (or raises, past twice its limit) while reading the header.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise PayloadTooLarge(
            f"the image has more than {max_pixels} pixels", code="too_many_pixels"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(
            "the file is not a JPEG, PNG, WebP or GIF image (judged by its content, "
            "not its declared type)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"the image header is corrupt: {exc}", code="corrupt_image") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            code="too_many_pixels",
        )
    if width <= 0 or height <= 0:
        raise BadRequest(f"the image has no pixels ({width}x{height})", code="corrupt_image")
    return image


def _thumbnail(image: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """The thumbnail, and whether EXIF orientation turned the image a quarter turn."""
    image.load()  # decodes everything that is left: truncation and corruption raise here
    turned = image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
    # In place: no full-size copy when there is nothing to turn (the usual case).
    ImageOps.exif_transpose(image, in_place=True)
    oriented = image
    if oriented.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = oriented.mode in ("P", "PA") and "transparency" in oriented.info
        oriented = oriented.convert("RGBA" if has_alpha or "A" in oriented.mode else "RGB")
    oriented.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # A clean copy carries no EXIF, XMP or comment: Pillow copies `info` into what it saves.
    clean = Image.new(oriented.mode, oriented.size)
    clean.paste(oriented)
    return clean, turned


def _encode(thumb: Image.Image) -> tuple[bytes, str]:
    out = io.BytesIO()
    if "A" in thumb.mode:
        thumb.save(out, format="PNG", optimize=False)
        return out.getvalue(), "image/png"
    thumb.save(out, format="JPEG", quality=85, optimize=False, progressive=False)
    return out.getvalue(), "image/jpeg"
