"""The image core's settings: one frozen object, read from the environment once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from image_core.errors import ConfigError

# A caller's user id: what api.py accepts, and what IMAGE_SYNTHETIC_USER_IDS may list.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+=-]{0,127}$")

# Pillow's Image.MAX_IMAGE_PIXELS: above it Pillow refuses an image before we can judge it.
PILLOW_PIXEL_LIMIT = 1024 * 1024 * 1024 // 4 // 3

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must be 0 or more")
    return value


def _positive_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a number of seconds greater than 0")
    return value


def _names(name: str, raw: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in raw.split(","))
    bad = [i for i in ids if not USER_ID.fullmatch(i)]
    if bad:
        raise ConfigError(
            f"{name}={raw!r}: {bad[0]!r} is not a user id (a comma-separated list of ids made "
            "of A-Z a-z 0-9 _ . @ : + = -)"
        )
    return tuple(dict.fromkeys(ids))


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if not value.startswith(tuple(f"{s}://" for s in schemes)):
            raise ConfigError(
                f"{name}={raw!r} must be a URL starting with {' or '.join(schemes)}://"
            )
        return value.rstrip("/")

    return parse


def _name(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{name} must not be empty")
    return value


# --- Latency thresholds (issue 13): the LatencyOver<N>ms counts published per request ---------
# Each threshold is one more metric per request and dimension set (a CloudWatch custom metric
# each), so the list is bounded; Watchtower mirrors it in WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS.
LATENCY_THRESHOLDS_MS = (250, 500, 800, 1000)
MAX_LATENCY_THRESHOLDS = 10
MAX_LATENCY_THRESHOLD_MS = 600_000  # ten minutes: beyond any request the API lets run


def _latency_thresholds(name: str, raw: str) -> tuple[int, ...]:
    parts = [part.strip() for part in raw.split(",")]
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} must list whole milliseconds, comma-separated (e.g. 250,500,800,1000)"
        ) from None
    if not 1 <= len(values) <= MAX_LATENCY_THRESHOLDS:
        raise ConfigError(f"{name}={raw!r} must list 1 to {MAX_LATENCY_THRESHOLDS} thresholds")
    if any(not 0 < v <= MAX_LATENCY_THRESHOLD_MS for v in values):
        raise ConfigError(
            f"{name}={raw!r}: each threshold must be from 1 to {MAX_LATENCY_THRESHOLD_MS} ms"
        )
    if values != tuple(sorted(set(values))):
        raise ConfigError(f"{name}={raw!r} must list distinct thresholds in ascending order")
    return values


# --- end of latency thresholds -------------------------------------------------------------


def _metrics_sink(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"auto", "cloudwatch", "emf", "none"}:
        raise ConfigError(f"{name}={raw!r} must be one of auto, cloudwatch, emf, none")
    return value


# -- the legacy table's name (issue 14) ----------------------------------------------------------
# One part of an SQL name: letters, digits and _, not starting with a digit, at most 63
# (PostgreSQL's NAMEDATALEN - 1). legacy.py composes it as a quoted identifier, never as text.
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def sql_table(name: str, raw: str) -> str:
    """`table` or `schema.table`, each part an SQL name; anything else fails, naming `name`."""
    value = raw.strip()
    parts = value.split(".")
    if len(parts) > 2 or not all(_SQL_NAME.fullmatch(p) for p in parts):
        raise ConfigError(
            f"{name}={raw!r} must be a table name, optionally schema-qualified (schema.table): "
            "letters, digits and _, not starting with a digit, at most 63 characters a part"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    table: str = "images"
    bucket: str = "images"
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    redis_url: str | None = None
    legacy_database_url: str | None = None
    legacy_table: str = "gallery_images"  # schema.table or table
    dual_write: bool = False
    trust_user_header: bool = False
    require_idempotency_key: bool = False
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000
    # memory one upload may decode to, judged from the header: pixels x bands as held in memory
    # (413 above)
    max_decode_bytes: int = 128 * 1024 * 1024
    decode_concurrency: int = 2  # decodes at once in this process; the next ones queue
    decode_queue: int = 16  # uploads that may wait for a decode slot; beyond, 503 + Retry-After
    decode_wait_seconds: float = 10.0  # the longest wait for a slot, then 503 + Retry-After
    # user ids whose `X-Synthetic-Traffic` is believed (the probe's); anyone else's is ignored and
    # logged; unset: nobody's
    synthetic_user_ids: tuple[str, ...] = ()
    # Bearer JWTs verified by the API itself when served as a server (image_core/auth.py); on
    # Lambda, API Gateway's JWT authorizer does it. Unset issuer: bearer tokens are not read.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None  # the issuer's keys (RS256/ES256), fetched and cached
    jwt_shared_key: str | None = field(default=None, repr=False)  # HS256: tests, the demo
    # remove location (the EXIF GPS IFD, XMP, IPTC) from stored originals by a byte-level edit
    # that leaves the pixels untouched
    strip_location: bool = True
    thumbnail_size: int = 400
    cdn_base_url: str | None = None
    presign_seconds: int = 3600
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_in_progress_seconds: int = 60
    cache_ttl_seconds: int = 300
    s3_workers: int = 8
    metrics_namespace: str = "ImageService"
    metrics_sink: str = "auto"
    metrics_flush_seconds: int = 10
    # LatencyOver<N>ms is published for each of these (ms, ascending): Watchtower judges latency
    # objectives only at thresholds listed here (and mirrored in its own settings).
    latency_thresholds_ms: tuple[int, ...] = LATENCY_THRESHOLDS_MS
    service_name: str = "image-core"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (variable, parse) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is not None and (raw.strip() or parse is parse_bool):
                values[field_name] = parse(variable, raw)
        if "region" not in values:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if region:
                values["region"] = region
        settings = cls(**values)
        if settings.max_pixels > PILLOW_PIXEL_LIMIT:
            raise ConfigError(
                f"IMAGE_MAX_PIXELS={settings.max_pixels} is above {PILLOW_PIXEL_LIMIT}, where "
                "Pillow's own decompression-bomb guard rejects images first"
            )
        if settings.dual_write and not settings.legacy_database_url:
            raise ConfigError(
                "ENABLE_DYNAMODB_DUAL_WRITE=true needs IMAGE_LEGACY_DATABASE_URL "
                f"(the PostgreSQL database that holds {settings.legacy_table})"
            )
        if settings.jwt_issuer and (
            not settings.jwt_audience
            or (settings.jwt_jwks_url is None) == (settings.jwt_shared_key is None)
        ):
            raise ConfigError(
                "IMAGE_JWT_ISSUER needs IMAGE_JWT_AUDIENCE and exactly one of IMAGE_JWT_JWKS_URL "
                "or IMAGE_JWT_SHARED_KEY"
            )
        if settings.jwt_shared_key is not None and len(settings.jwt_shared_key) < 32:
            raise ConfigError("IMAGE_JWT_SHARED_KEY must be at least 32 characters")
        return settings

    def __repr__(self) -> str:
        # Reprs end up in tracebacks and test reports: URLs keep their host, not their password.
        shown = (
            f"{f.name}={_without_password(getattr(self, f.name))!r}" for f in fields(self) if f.repr
        )
        return f"Settings({', '.join(shown)})"

    @property
    def cache_enabled(self) -> bool:
        return self.redis_url is not None


def _without_password(value: Any) -> Any:
    """`postgresql://user:***@host/db` for a URL with a password; anything else as it is."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# field -> (environment variable, parser). Every field of Settings is listed once.
_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "table": ("IMAGE_TABLE", _name),
    "bucket": ("IMAGE_BUCKET", _name),
    "region": ("IMAGE_REGION", _name),
    "aws_endpoint_url": ("AWS_ENDPOINT_URL", _url(("http", "https"))),
    "redis_url": ("IMAGE_REDIS_URL", _url(("redis", "rediss", "unix"))),
    "legacy_database_url": ("IMAGE_LEGACY_DATABASE_URL", _url(("postgresql", "postgres"))),
    "legacy_table": ("IMAGE_LEGACY_TABLE", sql_table),
    "dual_write": ("ENABLE_DYNAMODB_DUAL_WRITE", parse_bool),
    "trust_user_header": ("IMAGE_TRUST_USER_HEADER", parse_bool),
    "require_idempotency_key": ("IMAGE_REQUIRE_IDEMPOTENCY_KEY", parse_bool),
    "max_bytes": ("IMAGE_MAX_BYTES", _positive_int),
    "max_pixels": ("IMAGE_MAX_PIXELS", _positive_int),
    "max_decode_bytes": ("IMAGE_MAX_DECODE_BYTES", _positive_int),
    "decode_concurrency": ("IMAGE_DECODE_CONCURRENCY", _positive_int),
    "decode_queue": ("IMAGE_DECODE_QUEUE", _non_negative_int),
    "decode_wait_seconds": ("IMAGE_DECODE_WAIT_SECONDS", _positive_number),
    "synthetic_user_ids": ("IMAGE_SYNTHETIC_USER_IDS", _names),
    "jwt_issuer": ("IMAGE_JWT_ISSUER", _name),
    "jwt_audience": ("IMAGE_JWT_AUDIENCE", _name),
    "jwt_jwks_url": ("IMAGE_JWT_JWKS_URL", _url(("http", "https"))),
    "jwt_shared_key": ("IMAGE_JWT_SHARED_KEY", _name),
    "strip_location": ("IMAGE_STRIP_LOCATION", parse_bool),
    "thumbnail_size": ("IMAGE_THUMBNAIL_SIZE", _positive_int),
    "cdn_base_url": ("IMAGE_CDN_BASE_URL", _url(("http", "https"))),
    "presign_seconds": ("IMAGE_PRESIGN_SECONDS", _positive_int),
    "idempotency_ttl_seconds": ("IMAGE_IDEMPOTENCY_TTL_SECONDS", _positive_int),
    "idempotency_in_progress_seconds": ("IMAGE_IDEMPOTENCY_IN_PROGRESS_SECONDS", _positive_int),
    "cache_ttl_seconds": ("IMAGE_CACHE_TTL_SECONDS", _positive_int),
    "s3_workers": ("IMAGE_S3_WORKERS", _positive_int),
    "metrics_namespace": ("IMAGE_METRICS_NAMESPACE", _name),
    "metrics_sink": ("IMAGE_METRICS_SINK", _metrics_sink),
    "metrics_flush_seconds": ("IMAGE_METRICS_FLUSH_SECONDS", _positive_int),
    "latency_thresholds_ms": ("IMAGE_LATENCY_THRESHOLDS_MS", _latency_thresholds),
    "service_name": ("IMAGE_SERVICE_NAME", _name),
}


def variables() -> dict[str, str]:
    """Environment variable -> default, for the configuration reference."""
    defaults = Settings()
    return {var: repr(getattr(defaults, name)) for name, (var, _) in _VARIABLES.items()}
