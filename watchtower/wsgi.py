"""The WSGI entry of a production server: `gunicorn 'watchtower.wsgi:create_app()'`.

Nothing happens at import. gunicorn calls the factory once in its worker, which reads the
settings from the environment and wires the app; an invalid setting stops the worker naming the
variable. The app serves only: it never schedules. Probes, checks, the runbook worker and the
cutover sampler run in `watchtower scheduler` (watchtower/scheduler_main.py), and the two share
state through the database (WATCHTOWER_DATABASE_URL).
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The web app, from `environ` (the process's environment when None) and nothing else;
    `close` it with `close_app`."""
    import os

    from watchtower import web
    from watchtower.runtime import from_environ

    return web.create_app(from_environ(os.environ if environ is None else environ), scheduler=None)


def close_app(app: Flask) -> None:
    """Release what `create_app` opened (database pool, Redis, HTTP pools)."""
    watchtower = app.extensions.get("watchtower")
    if watchtower is not None:
        watchtower.close()
