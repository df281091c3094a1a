"""`python -m image_core bootstrap | serve`: the image service's command line."""

from __future__ import annotations

import logging
import sys

import click
from werkzeug.serving import make_server

from image_core.api import create_app
from image_core.app import bootstrap as bootstrap_resources
from image_core.app import build
from image_core.config import Settings
from image_core.errors import ConfigError, DependencyError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """The image service: uploads, thumbnails, galleries."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


@main.command()
def bootstrap() -> None:
    """Create the DynamoDB table, the S3 bucket and (with dual-write) the legacy table."""
    try:
        for line in bootstrap_resources(_settings()):
            click.echo(line)
    except DependencyError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the HTTP API (a threaded WSGI server)."""
    components = build(_settings())
    server = make_server(host, port, create_app(components=components), threaded=True)
    click.echo(f"image API on http://{host}:{server.server_port}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        components.close()


if __name__ == "__main__":
    sys.exit(main())
