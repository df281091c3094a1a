# syntax=docker/dockerfile:1
# Watchtower for production (docs/deployment.md). One image, two processes:
#
#   web        docker run -p 8080:8080 --env-file watchtower.env IMAGE
#              gunicorn, serving only: status page, runbooks, cutover, /api/v1/*, /metrics
#   scheduler  docker run --env-file watchtower.env IMAGE watchtower scheduler --host 0.0.0.0
#              probes, checks, the runbook worker and the cutover sampler; /healthz and
#              /metrics on the same port 8080
#
# Configuration comes from the environment only (WATCHTOWER_*, AWS_*; docs/configuration.md).
# Nothing secret is baked in: pass WATCHTOWER_USERS, WATCHTOWER_WEBHOOK_TOKEN and
# WATCHTOWER_SECRET_KEY at run time, from your orchestrator's secret store.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: every locked dependency as a wheel, each download checked against its hash --------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
# --require-hashes: a package whose bytes differ from what `make lock` pinned stops the build.
# A package published only as source is built here, never in the runtime stage.
RUN pip wheel --require-hashes --no-deps --wheel-dir /wheels -r /tmp/requirements.lock

# -- runtime: slim Python, the wheels, Watchtower's source, a user that is not root --------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH
# The wheels are mounted for this one step, so they take no layer of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --no-deps /wheels/*.whl
RUN groupadd --system --gid 10001 watchtower \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/watchtower \
       --shell /usr/sbin/nologin watchtower \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/watchtower
# The source tree, as the repository lays it out: the runbooks are read from runbooks/ beside
# the watchtower package, and the web templates and styles from inside it. Owned by root and
# compiled now, so the running user can read the code but never change it.
COPY watchtower /app/watchtower
COPY runbooks /app/runbooks
COPY alerts/routes.yml /app/alerts/routes.yml
RUN printf '#!/bin/sh\nexec python -m watchtower.cli "$@"\n' > /usr/local/bin/watchtower \
    && chmod 0755 /usr/local/bin/watchtower \
    && python -m compileall -q /app/watchtower
# Writable by Watchtower alone: the working directory, where the default SQLite history store
# (sqlite:///watchtower.sqlite) lands when WATCHTOWER_DATABASE_URL is not set. Production sets
# it to PostgreSQL, shared by every process.
WORKDIR /var/lib/watchtower
USER 10001:10001
EXPOSE 8080
# Liveness with Python's own urllib: the image has no curl. The scheduler process answers 503
# here once its schedule has stopped, so it is restarted too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
# The web process (watchtower/gunicorn_conf.py: 0.0.0.0:8080, one worker, eight threads).
# GUNICORN_CMD_ARGS overrides any of it at run time.
CMD ["gunicorn", "--config", "python:watchtower.gunicorn_conf"]
