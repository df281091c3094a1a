"""Watchtower's settings: one frozen object, read from the environment once at start-up.

Every check's thresholds and interval can be overridden with
`WATCHTOWER_CHECK_<CHECK>_<THRESHOLD>` (e.g. `WATCHTOWER_CHECK_UPLOAD_SUCCESS_MIN_SUCCESS_RATIO`)
and `WATCHTOWER_CHECK_<CHECK>_INTERVAL` (`WATCHTOWER_CHECKS_INTERVAL` sets every check's); unknown
names fail start-up with the variable's name. Which checks there are, and what each takes, is
handed in (`checks=watchtower.checks.tunables()`): settings sit below the checks, never above.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from watchtower.alerting import DEFAULT_ROUTES, Route, parse_routes
from watchtower.entropy import require_strong
from watchtower.errors import ConfigError

CHECK_PREFIX = "WATCHTOWER_CHECK_"
N = TypeVar("N", int, float)


# The value parsers: (variable, raw text) -> value, or a ConfigError that names the variable.
# cutover/config.py reads its WATCHTOWER_CUTOVER_* variables with them too.


def flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def positive_int(name: str, raw: str) -> int:
    return _above_zero(name, raw, _whole_number(name, raw))


def non_negative_int(name: str, raw: str) -> int:
    value = _whole_number(name, raw)
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def positive_number(name: str, raw: str) -> float:
    return _above_zero(name, raw, number(name, raw))


def _above_zero(name: str, raw: str, value: N) -> N:
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def ratio(name: str, raw: str) -> float:
    value = number(name, raw)
    if not 0 <= value <= 1:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 1")
    return value


def _url(*schemes: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if not value.startswith(tuple(f"{s}:" for s in schemes)):
            raise ConfigError(f"{name}={raw!r} must be a URL starting with {' or '.join(schemes)}:")
        return value.rstrip("/") if "://" in value and not value.startswith("sqlite") else value

    return parse


def _text(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{name} must not be empty")
    return value


ROLES = ("viewer", "operator", "admin")


def _users(name: str, raw: str) -> tuple[tuple[str, str, str], ...]:
    users = []
    for n, entry in enumerate(e.strip() for e in raw.split(",") if e.strip()):
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise ConfigError(f"{name}: entry {n + 1} must be name:role:secret")
        if parts[1] not in ROLES:
            raise ConfigError(
                f"{name}: entry {n + 1} has role {parts[1]!r}; use {', '.join(ROLES)}"
            )
        if not parts[2].startswith(("pbkdf2:", "scrypt:")):  # a plain secret is a bearer token
            require_strong(name, parts[2], f"the secret of entry {n + 1} ({parts[0]})")
        users.append((parts[0], parts[1], parts[2]))
    names = [u[0] for u in users]
    if len(set(names)) != len(names):
        raise ConfigError(f"{name}: a user is named twice")
    return tuple(users)


def _strong(name: str, raw: str) -> str:
    return require_strong(name, _text(name, raw))


def _routes_file(name: str, raw: str) -> tuple[Route, ...]:
    """The routes in a YAML file (alerts/routes.yml shows the shape), validated."""
    import yaml

    path = raw.strip()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}={raw!r}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}={raw!r}: not valid YAML ({exc})") from None
    return parse_routes(data, source=f"{name}={path}")


INTAKE_PLACES = ("scheduler", "process", "web")


def _nice(name: str, raw: str) -> int:
    value = non_negative_int(name, raw)
    if value > 19:
        raise ConfigError(f"{name}={raw!r} must be from 0 to 19 (a nice increment)")
    return value


def _intake_place(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in INTAKE_PLACES:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(INTAKE_PLACES)}")
    return value


def _anonymous_role(name: str, raw: str) -> str | None:
    value = raw.strip().lower()
    if value in {"", "none"}:
        return None
    if value not in ROLES:
        raise ConfigError(f"{name}={raw!r} must be none or one of {', '.join(ROLES)}")
    return value


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")


def _header_name(name: str, raw: str) -> str:
    value = raw.strip()
    if not _HEADER_NAME.fullmatch(value):
        raise ConfigError(f"{name}={raw!r} must be an HTTP header name, like X-Forwarded-User")
    if value.lower() in {"authorization", "cookie", "host"}:
        raise ConfigError(f"{name}={raw!r}: that header is the client's, not the proxy's")
    return value


def _networks(name: str, raw: str) -> tuple[str, ...]:
    networks = []
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not an address or a CIDR block") from None
    return tuple(networks)


def _proxy_users(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    users = []
    for n, entry in enumerate(e.strip() for e in raw.split(",") if e.strip()):
        user, _, role = entry.rpartition(":")
        if not user or role not in ROLES:
            raise ConfigError(
                f"{name}: entry {n + 1} must be name:role with role {', '.join(ROLES)}"
            )
        users.append((user.strip(), role))
    names = [u[0] for u in users]
    if len(set(names)) != len(names):
        raise ConfigError(f"{name}: a user is named twice")
    return tuple(users)


# -- the legacy table's name (issue 14) ----------------------------------------------------------
# One part of an SQL name as it may be configured: letters, digits and _, not starting with a
# digit, at most 63 (PostgreSQL's NAMEDATALEN - 1). Always composed as a quoted identifier
# (psycopg.sql.Identifier), never as text; the rule keeps it printable and free of quotes too.
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


def table_parts(value: str) -> tuple[str, ...]:
    """The parts psycopg.sql.Identifier takes, (schema, table) or (table,), validated again."""
    return tuple(sql_table("the legacy table", value).split("."))


def regclass_text(value: str) -> str:
    """The table as `to_regclass()` reads it (a value, bound as a parameter): each part quoted,
    so its case is kept. Safe to build: the parts hold no quote (`sql_table`)."""
    return ".".join(f'"{part}"' for part in table_parts(value))


@dataclass(frozen=True, kw_only=True)
class Settings:
    image_api_url: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///watchtower.sqlite"
    redis_url: str | None = None
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    table: str = "images"
    bucket: str = "images"
    lambda_function: str = "image-api"
    # The alias traffic goes through (live, prod); None: the function is served unqualified
    lambda_alias: str | None = None
    lambda_log_group: str | None = None  # default /aws/lambda/<function>
    cloudfront_distribution_id: str | None = None
    metrics_namespace: str = "ImageService"
    legacy_database_url: str | None = None
    legacy_table: str = "gallery_images"  # the legacy table (schema.table or table)
    probe_user: str = "watchtower-probe"
    # The probe's credential (one of three; watchtower/probes/credential.py): a bearer token, a
    # file it re-reads, or a command whose output is the token. None: X-User-Id (a trusted header)
    probe_token: str | None = field(default=None, repr=False)
    probe_token_file: str | None = None
    probe_token_command: str | None = None
    probe_interval: int = 60
    probe_timeout_seconds: int = 10
    check_tick: int = 30  # how often due checks are looked for
    check_interval: int | None = None  # every check's interval, unless overridden per check
    check_deadline_seconds: int = 40  # the most a check cycle waits for its sources (< interval)
    probe_deadline_seconds: int = 45  # the most one probe run, retry included, may take
    retention_days: int = 90
    scheduler_jitter: int = 5
    sandbox: bool = False  # the demo: some telemetry is simulated, and the UI says so
    # Who may do what: name:role:secret entries (role viewer, operator or admin). A plain secret
    # (32 random bytes or more) is a bearer token and a password; a werkzeug hash a password only.
    users: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    anonymous_role: str | None = "viewer"  # what a visitor who is not logged in may do
    # Single sign-on by a reverse proxy: the header carrying the name of the user it signed in,
    # believed only from a connection of one of trusted_proxies (docs/security.md). Off unset.
    trusted_user_header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # CIDRs the header is read from
    # name:role of people signed in by the proxy; the proxy says who, these say what they may do
    proxy_users: tuple[tuple[str, str], ...] = ()
    proxy_default_role: str | None = None  # the role of a proxy-signed-in name not listed above
    webhook_token: str | None = field(
        default=None, repr=False
    )  # Alertmanager's bearer token for POST /api/v1/alerts
    secret_key: str | None = field(
        default=None, repr=False
    )  # signs session cookies; random per process when unset
    # Failed sign-ins (login form, basic auth; docs/security.md) allowed per user name, and per
    # client address, in a window of signin_window_seconds; beyond them, 429 until it ends.
    signin_max_failures: int = 10  # failed sign-ins per user name in a window, then 429
    signin_max_failures_per_address: int = 50  # failed sign-ins per client address in a window
    signin_window_seconds: int = 900  # opened by a first failure; the refusals last until its end
    session_idle_seconds: int = 43_200  # a login session unused this long has ended
    max_body_bytes: int = 65_536  # the largest request body of any page but the webhook (413)
    public_url: str = "http://127.0.0.1:8080"  # where people reach Watchtower (runbook links)
    prometheus_url: str | None = None  # runbook `query` steps' PromQL goes to its HTTP API
    alertmanager_url: str | None = None  # runbook silences go to its API v2
    image_redis_url: str | None = None  # the image service's Redis (gallery cache invalidation)
    runbooks_dir: str | None = None  # default: runbooks/ beside the watchtower package
    runbook_approval_timeout: int = 3600  # seconds an approval request waits before it expires
    runbook_workers: int = 4  # executions advanced at once by one replica
    # How much nicer than its process the runbook worker's threads run (Linux): in an alert
    # storm, answering Alertmanager and starting runs get the CPU before the runs do.
    runbook_worker_nice: int = 10
    # A replica whose worker sent no heartbeat for this long has stopped: its runs are taken over.
    runbook_lease_seconds: int = 60
    # Notifications handled at once per process; beyond it, 503 at once so Alertmanager backs off
    # and retries, instead of timeouts while abandoned requests are still being worked on.
    webhook_max_in_flight: int = 16
    # Acknowledge a notification after storing it (one write), and dispatch it from the store on
    # the intake (WEBHOOK_INTAKE says where); off: dispatch before answering (the summary says
    # what started).
    webhook_deferred: bool = False
    # Where deferred notifications are dispatched: `scheduler`, the process that runs the
    # schedule (`watchtower scheduler`, or `watchtower serve` without --no-scheduler); `process`,
    # a process of its own (`watchtower intake`, beside the scheduler); both woken by
    # PostgreSQL's NOTIFY and polling every second; `web`, a thread of the web process that
    # stored the notification (one process, no scheduler anywhere).
    webhook_intake: str = "scheduler"
    webhook_max_bytes: int = 1_048_576  # the largest Alertmanager notification accepted (413)
    # Which alerts start which runbooks, and how (watchtower.alerting; WATCHTOWER_ROUTES_FILE).
    routes: tuple[Route, ...] = field(default=DEFAULT_ROUTES, repr=False)
    # check name -> {threshold or "interval": value}, from WATCHTOWER_CHECK_* variables
    check_overrides: dict[str, dict[str, float]] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Reprs end up in tracebacks and test reports: URLs keep their host, not their password.
        shown = (
            f"{f.name}={_without_password(getattr(self, f.name))!r}" for f in fields(self) if f.repr
        )
        return f"Settings({', '.join(shown)})"

    @property
    def log_group(self) -> str:
        return self.lambda_log_group or f"/aws/lambda/{self.lambda_function}"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        checks: Mapping[str, Collection[str]] | None = None,
    ) -> Settings:
        """The settings in `environ` (`os.environ` when None). `checks` names each check and
        the thresholds it takes: WATCHTOWER_CHECK_* variables are refused without it."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (variable, parse) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is not None and (raw.strip() or parse is flag):
                values[field_name] = parse(variable, raw)
        if "region" not in values and (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
            values["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        overrides: dict[str, dict[str, float]] = {}
        for variable, raw in env.items():
            if variable.startswith(CHECK_PREFIX):
                check, key = _split_check_variable(variable, checks)
                overrides.setdefault(check, {})[key] = number(variable, raw)
        values["check_overrides"] = overrides
        given = [
            f for f in ("probe_token", "probe_token_file", "probe_token_command") if f in values
        ]
        if len(given) > 1:
            raise ConfigError(
                "give one of WATCHTOWER_PROBE_TOKEN, WATCHTOWER_PROBE_TOKEN_FILE and "
                "WATCHTOWER_PROBE_TOKEN_COMMAND, not several"
            )
        return cls(**values)


def _without_password(value: Any) -> Any:
    """`postgresql://user:***@host/db` for a URL with a password; anything else as it is."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _split_check_variable(
    variable: str, checks: Mapping[str, Collection[str]] | None
) -> tuple[str, str]:
    """WATCHTOWER_CHECK_UPLOAD_SUCCESS_MIN_SUCCESS_RATIO -> (upload_success, min_success_ratio)."""
    if checks is None:
        raise ConfigError(f"{variable}: check settings are read only with the checks' catalog")
    rest = variable[len(CHECK_PREFIX) :].lower()
    for name in sorted(checks):
        if rest.startswith(name + "_"):
            key = rest[len(name) + 1 :]
            if key == "interval" or key in checks[name]:
                return name, key
            allowed = ", ".join(sorted([*checks[name], "interval"]))
            raise ConfigError(f"{variable}: check {name!r} has no setting {key!r} ({allowed})")
    raise ConfigError(f"{variable}: no check is named by it (checks: {', '.join(sorted(checks))})")


_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "image_api_url": ("WATCHTOWER_IMAGE_API_URL", _url("http", "https")),
    "database_url": ("WATCHTOWER_DATABASE_URL", _url("sqlite", "postgresql", "postgresql+psycopg")),
    "redis_url": ("WATCHTOWER_REDIS_URL", _url("redis", "rediss", "unix")),
    "region": ("WATCHTOWER_AWS_REGION", _text),
    "aws_endpoint_url": ("AWS_ENDPOINT_URL", _url("http", "https")),
    "table": ("WATCHTOWER_TABLE", _text),
    "bucket": ("WATCHTOWER_BUCKET", _text),
    "lambda_function": ("WATCHTOWER_LAMBDA_FUNCTION", _text),
    "lambda_alias": ("WATCHTOWER_LAMBDA_ALIAS", _text),
    "lambda_log_group": ("WATCHTOWER_LAMBDA_LOG_GROUP", _text),
    "cloudfront_distribution_id": ("WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID", _text),
    "metrics_namespace": ("WATCHTOWER_METRICS_NAMESPACE", _text),
    "legacy_database_url": ("WATCHTOWER_LEGACY_DATABASE_URL", _url("postgresql", "postgres")),
    "legacy_table": ("WATCHTOWER_LEGACY_TABLE", sql_table),
    "probe_user": ("WATCHTOWER_PROBE_USER", _text),
    "probe_token": ("WATCHTOWER_PROBE_TOKEN", _text),
    "probe_token_file": ("WATCHTOWER_PROBE_TOKEN_FILE", _text),
    "probe_token_command": ("WATCHTOWER_PROBE_TOKEN_COMMAND", _text),
    "probe_interval": ("WATCHTOWER_PROBE_INTERVAL", positive_int),
    "probe_timeout_seconds": ("WATCHTOWER_PROBE_TIMEOUT_SECONDS", positive_int),
    "check_tick": ("WATCHTOWER_CHECKS_TICK", positive_int),
    "check_interval": ("WATCHTOWER_CHECKS_INTERVAL", positive_int),
    "check_deadline_seconds": ("WATCHTOWER_CHECKS_DEADLINE_SECONDS", positive_int),
    "probe_deadline_seconds": ("WATCHTOWER_PROBE_DEADLINE_SECONDS", positive_int),
    "retention_days": ("WATCHTOWER_RETENTION_DAYS", positive_int),
    "scheduler_jitter": ("WATCHTOWER_SCHEDULER_JITTER", positive_int),
    "sandbox": ("WATCHTOWER_SANDBOX", flag),
    "users": ("WATCHTOWER_USERS", _users),
    "anonymous_role": ("WATCHTOWER_ANONYMOUS_ROLE", _anonymous_role),
    "trusted_user_header": ("WATCHTOWER_TRUSTED_USER_HEADER", _header_name),
    "trusted_proxies": ("WATCHTOWER_TRUSTED_PROXIES", _networks),
    "proxy_users": ("WATCHTOWER_PROXY_USERS", _proxy_users),
    "proxy_default_role": ("WATCHTOWER_PROXY_DEFAULT_ROLE", _anonymous_role),
    "webhook_token": ("WATCHTOWER_WEBHOOK_TOKEN", _strong),
    "secret_key": ("WATCHTOWER_SECRET_KEY", _strong),
    "signin_max_failures": ("WATCHTOWER_SIGNIN_MAX_FAILURES", positive_int),
    "signin_max_failures_per_address": ("WATCHTOWER_SIGNIN_MAX_FAILURES_PER_ADDRESS", positive_int),
    "signin_window_seconds": ("WATCHTOWER_SIGNIN_WINDOW_SECONDS", positive_int),
    "session_idle_seconds": ("WATCHTOWER_SESSION_IDLE_SECONDS", positive_int),
    "max_body_bytes": ("WATCHTOWER_MAX_BODY_BYTES", positive_int),
    "public_url": ("WATCHTOWER_PUBLIC_URL", _url("http", "https")),
    "webhook_max_bytes": ("WATCHTOWER_WEBHOOK_MAX_BYTES", positive_int),
    "webhook_max_in_flight": ("WATCHTOWER_WEBHOOK_MAX_IN_FLIGHT", positive_int),
    "webhook_deferred": ("WATCHTOWER_WEBHOOK_DEFERRED", flag),
    "webhook_intake": ("WATCHTOWER_WEBHOOK_INTAKE", _intake_place),
    "prometheus_url": ("WATCHTOWER_PROMETHEUS_URL", _url("http", "https")),
    "alertmanager_url": ("WATCHTOWER_ALERTMANAGER_URL", _url("http", "https")),
    "image_redis_url": ("WATCHTOWER_IMAGE_REDIS_URL", _url("redis", "rediss", "unix")),
    "runbooks_dir": ("WATCHTOWER_RUNBOOKS_DIR", _text),
    "runbook_approval_timeout": ("WATCHTOWER_RUNBOOK_APPROVAL_TIMEOUT", positive_int),
    "runbook_workers": ("WATCHTOWER_RUNBOOK_WORKERS", positive_int),
    "runbook_worker_nice": ("WATCHTOWER_RUNBOOK_WORKER_NICE", _nice),
    "runbook_lease_seconds": ("WATCHTOWER_RUNBOOK_LEASE_SECONDS", positive_int),
    "routes": ("WATCHTOWER_ROUTES_FILE", _routes_file),
}


def variables() -> dict[str, str]:
    """Environment variable -> default, for the configuration reference."""
    defaults = Settings()
    shown = {var: repr(getattr(defaults, name)) for name, (var, _) in _VARIABLES.items()}
    shown["WATCHTOWER_ROUTES_FILE"] = "None (the built-in routes, as in alerts/routes.yml)"
    return shown
