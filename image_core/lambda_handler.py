"""The same Flask app, served to API Gateway HTTP API (payload v2) events on Lambda."""

from __future__ import annotations

from typing import Any

from apig_wsgi import make_lambda_handler

from image_core.api import create_app
from image_core.app import build
from image_core.config import Settings

_handler: Any = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point; the first call in a container is a cold start, counted as such."""
    global _handler
    if _handler is None:
        components = build(Settings.from_env(), on_lambda=True)
        components.telemetry.cold_start()
        _handler = make_lambda_handler(
            create_app(components=components),
            binary_support=True,
        )
    response: dict[str, Any] = _handler(event, context)
    return response
