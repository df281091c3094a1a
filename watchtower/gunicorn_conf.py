"""gunicorn's settings for Watchtower's web process (the Dockerfile's command):

    gunicorn --config python:watchtower.gunicorn_conf

One worker process with threads, on purpose. Prometheus metrics live in the process that counts
them, and Watchtower's are read from that process (custom collectors do not work under
PROMETHEUS_MULTIPROC_DIR): with several worker processes behind one port, each scrape of /metrics
would land on a different worker and read its counters alone. Scale out with replicas instead,
each a target Prometheus scrapes. Threads suit the work: requests wait on the database, Redis and
AWS, not on the CPU.

gunicorn's own `GUNICORN_CMD_ARGS` overrides anything here without a new image, e.g.
`GUNICORN_CMD_ARGS="--bind 127.0.0.1:9000 --threads 16"`. Watchtower's settings come from its
WATCHTOWER_* variables (docs/configuration.md).
"""

from __future__ import annotations

from typing import Any

wsgi_app = "watchtower.wsgi:create_app()"
bind = ["0.0.0.0:8080"]  # a container listens on its own interface; the host maps the port
workers = 1
worker_class = "gthread"
threads = 8
timeout = 60  # a worker silent this long is restarted (gthread: its main loop, not a request)
graceful_timeout = 20  # on SIGTERM, requests in flight get this long to finish
# Longer than a load balancer's idle timeout (an ALB's is 60 s): the balancer, not gunicorn,
# closes an idle connection, so it never reuses one gunicorn has just closed (a 502).
keepalive = 75
accesslog = "-"
errorlog = "-"
# Watchtower's own log lines (INFO and up) on stderr too, in gunicorn's format; merged over
# gunicorn's defaults (its handlers `console`, stdout, and `error_console`, stderr), each line once.
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
# The workers' heartbeat file: tmpfs, not the container's overlay filesystem, which can stall it.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (a heartbeat file of gunicorn's own, no data)
# gunicorn's control socket would live in $HOME: one process per container needs no control.
control_socket_disable = True


def worker_exit(server: Any, worker: Any) -> None:
    """Close the database pool and clients of the app this worker served."""
    from watchtower.wsgi import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        close_app(app)


def on_starting(server: Any) -> None:
    """Validate the settings once in the master: an invalid one stops gunicorn with one line
    naming the variable (exit 2, as the CLI), before any worker boots."""
    import sys

    from watchtower.checks import tunables
    from watchtower.config import Settings
    from watchtower.errors import ConfigError

    try:
        Settings.from_env(checks=tunables())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
