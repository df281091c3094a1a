"""The cutover sign-off's settings: one frozen object, read from `WATCHTOWER_CUTOVER_*` once.

Every value has a default that follows Story 6.1 (a 24-hour window, a > 99.9% gate, upload P95
under 800 ms); an invalid or unknown `WATCHTOWER_CUTOVER_*` variable fails start-up naming it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from watchtower.checks.dual_write import MIN_SUCCESS_RATIO
from watchtower.checks.upload_success import OBJECTIVE_MS
from watchtower.config import (
    flag,
    non_negative_int,
    positive_int,
    positive_number,
    ratio,
)
from watchtower.cutover.model import LATENCY_THRESHOLDS_MS
from watchtower.errors import ConfigError

PREFIX = "WATCHTOWER_CUTOVER_"


@dataclass(frozen=True, kw_only=True)
class CutoverSettings:
    window_seconds: int = 24 * 3600  # how long the flag must stay off before sign-off
    sample_interval: int = 300  # one evidence sample per slot of this many seconds
    # CloudWatch publishes a minute or two late: a sample reads the metrics of the slot that
    # ended this long ago, so it never judges a half-published slot.
    metrics_lag_seconds: int = 120
    # Dual-write metrics stamped in the first minutes after the flip may be from before it (the
    # image core flushes every few seconds; Lambda replaces its environments over seconds).
    grace_seconds: int = 120
    preflight_days: int = 7
    baseline_days: int = 7
    min_coverage: float = 0.99
    min_success_ratio: float = MIN_SUCCESS_RATIO  # the dual_write check's rule, shared
    # Share of DynamoDB's images whose ids may differ between the stores: 0, every difference
    # fails (reconciliation is by identity, and each difference is listed).
    reconciliation_tolerance: float = 0.0
    # Reconciliation reads DynamoDB with a paced Scan: at most this many read units a second
    # (the capacity the image service can spare), in pages of this many items.
    reconcile_read_units_per_second: float = 100.0
    reconcile_page_size: int = 1000
    # The one upload latency objective: this criterion, the upload_success check and the
    # ImageUploadSlow alerts (the root hands it to the check). One of latency_thresholds_ms, or
    # start-up is refused.
    max_p95_ms: float = float(OBJECTIVE_MS)
    # The LatencyOver<N>ms thresholds the image core publishes: must mirror the image core's
    # IMAGE_LATENCY_THRESHOLDS_MS. Latency is judged from counts over these, so only they can be
    # an objective.
    latency_thresholds_ms: tuple[int, ...] = LATENCY_THRESHOLDS_MS
    max_p95_regression: float = 0.10  # the window's P95 may be at most this much above baseline
    max_breach_seconds: int = 1800  # a latency breach longer than this fails the window
    min_slot_latency_samples: int = 20  # fewer uploads in a slot: its P95 is not judged
    min_window_latency_samples: int = 100
    min_write_ratio: float = 0.5  # of the same hours' average over the previous days
    min_baseline_write_units: float = 10.0  # per hour: less is too little to compare against
    max_low_write_hours: int = 2
    max_lambda_error_ratio: float = 0.001
    # Users' get, list and delete, judged beside uploads: at most this share of server errors
    # per operation, and P95 at or under this (one of latency_thresholds_ms) for each.
    max_operation_error_ratio: float = 0.001
    max_operation_p95_ms: float = 500.0
    min_operation_latency_samples: int = 100  # fewer requests of an operation: its P95 not judged
    # Slots the sampler missed (Watchtower down) are read back from the sources' history, at
    # most this many per tick, and only while CloudWatch still holds one-minute data for them.
    backfill_slots_per_tick: int = 24
    backfill_max_age_seconds: int = 15 * 86400
    signers: tuple[str, ...] = ("Engineering lead", "Operations lead")
    # Which logins may sign which role: (role, (user, ...)). A role not listed: any operator.
    # Either way one login signs at most one role of a window.
    signer_users: tuple[tuple[str, tuple[str, ...]], ...] = ()
    cost_tag: tuple[str, str] = ("service", "image-service")
    rollback_runbook: str = "rollback-dual-write"
    # A rehearsal (`watchtower demo rehearse`, the sandbox only): every window, document, report
    # and hash of this Watchtower is marked REHEARSAL, and its sign-offs are the signers' roles
    # with " (REHEARSAL)" added, so none can stand for the real sign-off.
    rehearsal: bool = False
    rehearsal_window_seconds: int = 20 * 60  # a rehearsal's window and sampling interval
    rehearsal_sample_seconds: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CutoverSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        known = {variable for variable, _, _ in _VARIABLES.values()}
        for variable in env:
            if variable.startswith(PREFIX) and variable not in known:
                raise ConfigError(
                    f"{variable}: no such cutover setting (known: {', '.join(sorted(known))})"
                )
        for field_name, (variable, parse, scale) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is not None and raw.strip():
                value = parse(variable, raw)
                values[field_name] = value * scale if scale != 1 else value
        _one_success_rule(env, values)
        settings = cls(**values)
        judgeable_objective(settings)
        if settings.rehearsal:
            settings = rehearsal_of(settings)
        if settings.window_seconds < settings.sample_interval:
            raise ConfigError(
                f"{PREFIX}WINDOW_HOURS must cover at least one {PREFIX}SAMPLE_INTERVAL"
            )
        unknown = [role for role, _ in settings.signer_users if role not in settings.signers]
        if unknown:
            raise ConfigError(
                f"{PREFIX}SIGNER_USERS names roles that are not in {PREFIX}SIGNERS: "
                f"{', '.join(unknown)} (roles: {', '.join(settings.signers)})"
            )
        return settings

    def allowed_signers(self, role: str) -> tuple[str, ...] | None:
        """The logins that may sign `role`, or None when any operator may."""
        return dict(self.signer_users).get(role)


def judgeable_objective(settings: CutoverSettings) -> None:
    """Refuse an upload P95 objective the evidence cannot judge: latency is read as counts of
    uploads over the image core's published thresholds, so the objective must be one of them
    (never a silent "0% over 900 ms")."""
    known = ", ".join(str(t) for t in settings.latency_thresholds_ms)
    operations = settings.max_operation_p95_ms
    if operations not in settings.latency_thresholds_ms:
        raise ConfigError(
            f"{PREFIX}MAX_OPERATION_P95_MS={operations:g} cannot be judged: the image core "
            f"publishes latency only as counts over {known} ms; set one of those"
        )
    objective = settings.max_p95_ms
    if objective in settings.latency_thresholds_ms:
        return
    raise ConfigError(
        f"{PREFIX}MAX_P95_MS={objective:g} cannot be judged: the image core publishes upload "
        f"latency only as counts over {known} ms (LatencyOver<N>ms). Set one of those, or publish "
        f"{objective:g} too (the image core's IMAGE_LATENCY_THRESHOLDS_MS) and list it in "
        f"{PREFIX}LATENCY_THRESHOLDS_MS"
    )


def _thresholds(name: str, raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must list whole milliseconds, comma-separated") from None
    if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
        raise ConfigError(f"{name}={raw!r} must list distinct positive milliseconds")
    return tuple(sorted(values))


CHECK_MIN_SUCCESS_RATIO = "WATCHTOWER_CHECK_DUAL_WRITE_MIN_SUCCESS_RATIO"


def _one_success_rule(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """One dual-write success threshold for the check, the gate and the alert: the gate takes the
    dual_write check's when its own is unset, and refuses to start when the two differ."""
    raw = (env.get(CHECK_MIN_SUCCESS_RATIO) or "").strip()
    if not raw:
        return
    check = ratio(CHECK_MIN_SUCCESS_RATIO, raw)
    gate = values.get("min_success_ratio")
    if gate is None:
        values["min_success_ratio"] = check
    elif gate != check:
        raise ConfigError(
            f"{PREFIX}MIN_SUCCESS_RATIO={gate} and {CHECK_MIN_SUCCESS_RATIO}={check} differ: the "
            "pre-flight gate, the dual_write check and its alert share one threshold; set one "
            "(or both to the same value)"
        )


def _minutes_int(name: str, raw: str) -> int:
    value = positive_int(name, raw)
    if value % 60:
        raise ConfigError(f"{name}={raw!r} must be a whole number of minutes (seconds, * 60)")
    return value


def _names(name: str, raw: str) -> tuple[str, ...]:
    roles = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not roles or len(set(roles)) != len(roles):
        raise ConfigError(f"{name}={raw!r} must list distinct stakeholder roles, comma-separated")
    if any(len(r) > 80 or any(ord(c) < 32 for c in r) for r in roles):
        raise ConfigError(f"{name}: a role is longer than 80 characters or has control characters")
    return roles


def _signer_users(name: str, raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`role:user1|user2,role2:user3` (a role may hold spaces; user names no `:`, `|` or `,`)."""
    out: dict[str, tuple[str, ...]] = {}
    for n, entry in enumerate(part for part in raw.split(",") if part.strip()):
        role, sep, users_raw = entry.rpartition(":")
        role = role.strip()
        users = tuple(u.strip() for u in users_raw.split("|") if u.strip())
        if not sep or not role or not users:
            raise ConfigError(
                f"{name}: entry {n + 1} ({entry.strip()!r}) must be role:user1|user2, e.g. "
                "'Operations lead:olive|oscar'"
            )
        if role in out:
            raise ConfigError(f"{name}: the role {role!r} is listed twice")
        if any(len(u) > 256 or not u.isprintable() for u in users):
            raise ConfigError(f"{name}: a user of {role!r} is not a user name")
        out[role] = users
    return tuple(out.items())


def _tag(name: str, raw: str) -> tuple[str, str]:
    key, sep, value = raw.strip().partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"{name}={raw!r} must be key=value (e.g. service=image-service)")
    return key.strip(), value.strip()


def _runbook_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.replace("-", "").isalnum() or not value.islower():
        raise ConfigError(f"{name}={raw!r} is not a runbook id (lowercase letters, digits, -)")
    return value


_Parse = Callable[[str, str], Any]
_VARIABLES: dict[str, tuple[str, _Parse, int]] = {
    "window_seconds": (f"{PREFIX}WINDOW_HOURS", positive_int, 3600),
    "sample_interval": (f"{PREFIX}SAMPLE_INTERVAL", _minutes_int, 1),
    "metrics_lag_seconds": (f"{PREFIX}METRICS_LAG", non_negative_int, 1),
    "grace_seconds": (f"{PREFIX}GRACE", non_negative_int, 1),
    "preflight_days": (f"{PREFIX}PREFLIGHT_DAYS", positive_int, 1),
    "baseline_days": (f"{PREFIX}BASELINE_DAYS", positive_int, 1),
    "min_coverage": (f"{PREFIX}MIN_COVERAGE", ratio, 1),
    "min_success_ratio": (f"{PREFIX}MIN_SUCCESS_RATIO", ratio, 1),
    "reconciliation_tolerance": (f"{PREFIX}RECONCILIATION_TOLERANCE", ratio, 1),
    "reconcile_read_units_per_second": (f"{PREFIX}RECONCILE_READ_UNITS", positive_number, 1),
    "reconcile_page_size": (f"{PREFIX}RECONCILE_PAGE_SIZE", positive_int, 1),
    "max_p95_ms": (f"{PREFIX}MAX_P95_MS", positive_number, 1),
    "max_p95_regression": (f"{PREFIX}MAX_P95_REGRESSION", ratio, 1),
    "latency_thresholds_ms": (f"{PREFIX}LATENCY_THRESHOLDS_MS", _thresholds, 1),
    "max_breach_seconds": (f"{PREFIX}MAX_BREACH_MINUTES", positive_int, 60),
    "min_write_ratio": (f"{PREFIX}MIN_WRITE_RATIO", ratio, 1),
    "max_low_write_hours": (f"{PREFIX}MAX_LOW_WRITE_HOURS", non_negative_int, 1),
    "max_lambda_error_ratio": (f"{PREFIX}MAX_LAMBDA_ERROR_RATIO", ratio, 1),
    "max_operation_error_ratio": (f"{PREFIX}MAX_OPERATION_ERROR_RATIO", ratio, 1),
    "max_operation_p95_ms": (f"{PREFIX}MAX_OPERATION_P95_MS", positive_number, 1),
    "backfill_slots_per_tick": (f"{PREFIX}BACKFILL_SLOTS_PER_TICK", non_negative_int, 1),
    "backfill_max_age_seconds": (f"{PREFIX}BACKFILL_MAX_AGE_DAYS", positive_int, 86400),
    "signers": (f"{PREFIX}SIGNERS", _names, 1),
    "signer_users": (f"{PREFIX}SIGNER_USERS", _signer_users, 1),
    "cost_tag": (f"{PREFIX}COST_TAG", _tag, 1),
    "rollback_runbook": (f"{PREFIX}ROLLBACK_RUNBOOK", _runbook_id, 1),
    "rehearsal": (f"{PREFIX}REHEARSAL", flag, 1),
    "rehearsal_window_seconds": (f"{PREFIX}REHEARSAL_WINDOW_SECONDS", positive_int, 1),
    "rehearsal_sample_seconds": (f"{PREFIX}REHEARSAL_SAMPLE_SECONDS", positive_int, 1),
}


REHEARSAL_ROLE = " (REHEARSAL)"
REHEARSAL_MIN_UPLOADS = 20  # timed uploads a rehearsal's window needs before its P95 is judged


def rehearsal_of(settings: CutoverSettings) -> CutoverSettings:
    """The same settings as a rehearsal: marked, its compressed window and sampling, metrics read
    at once (the sandbox's are not late), and signed only by rehearsal roles. A rehearsal proves
    the mechanics, not the statistics: its minimum count of timed uploads is scaled down with its
    window (never below REHEARSAL_MIN_UPLOADS), since the demo's users upload at their own pace."""
    if settings.rehearsal_window_seconds < settings.rehearsal_sample_seconds:
        raise ConfigError(
            f"{PREFIX}REHEARSAL_WINDOW_SECONDS must cover at least one "
            f"{PREFIX}REHEARSAL_SAMPLE_SECONDS"
        )
    signers = tuple(
        r if r.endswith(REHEARSAL_ROLE) else r + REHEARSAL_ROLE for r in settings.signers
    )
    return replace(
        settings,
        rehearsal=True,
        window_seconds=settings.rehearsal_window_seconds,
        sample_interval=settings.rehearsal_sample_seconds,
        metrics_lag_seconds=0,
        grace_seconds=min(settings.grace_seconds, 2 * settings.rehearsal_sample_seconds),
        min_window_latency_samples=max(
            REHEARSAL_MIN_UPLOADS,
            math.ceil(
                settings.min_window_latency_samples
                * settings.rehearsal_window_seconds
                / settings.window_seconds
            ),
        ),
        signers=signers,
    )


def variables() -> dict[str, str]:
    """Environment variable -> default, for the configuration reference."""
    defaults = CutoverSettings()
    return {var: repr(getattr(defaults, name)) for name, (var, _, _) in _VARIABLES.items()}
