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


def create_function(iam: Any, lam: Any, name: str, environment: dict[str, str]) -> None:
    """A Lambda function in moto carrying `environment` (its code is never run here)."""
    import zipfile

    try:
        role = iam.get_role(RoleName="image-api-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(
            RoleName="image-api-role",
            Path="/",
            AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
        )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": dict(environment)},
    )
