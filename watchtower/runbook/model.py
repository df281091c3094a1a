"""Runbooks, their steps and parameters, and executions with their state machine. Pure.

An execution moves

    pending ──> running ──> waiting_for_approval ──> running ──> … ──> succeeded
       │           │                 │                                  failed
       └───────────┴─────────────────┴───────────────────────────────>  cancelled

`pending`: created, not started yet (no worker has taken it, or its lock is held by another run).
`running`: a worker is running its steps, or will take it up at the next step.
`waiting_for_approval`: a person must approve (or confirm a manual step) before it goes on.
The three last states are final. `TRANSITIONS` is the whole machine; the engine refuses others.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from watchtower.runbook.errors import ParamError

Mode = Literal["manual", "automatic", "suggest"]
StepKind = Literal["check", "query", "action", "approval", "manual"]
STEP_KINDS: tuple[StepKind, ...] = ("check", "query", "action", "approval", "manual")
QUERY_KINDS = ("promql", "cloudwatch", "logs", "sql")


class ExecutionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting_for_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


OPEN_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)

TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.PENDING: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
    ),
    ExecutionStatus.RUNNING: frozenset(
        {
            ExecutionStatus.WAITING,
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        }
    ),
    ExecutionStatus.WAITING: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
    ),
    ExecutionStatus.SUCCEEDED: frozenset(),
    ExecutionStatus.FAILED: frozenset(),
    ExecutionStatus.CANCELLED: frozenset(),
}


def allowed(current: ExecutionStatus, new: ExecutionStatus) -> bool:
    return new in TRANSITIONS[current]


class StepStatus(enum.StrEnum):
    PENDING = "pending"  # not reached (yet)
    RUNNING = "running"
    WAITING = "waiting"  # for an approval or a manual confirmation
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # `when:` was false, an on_failure jump passed it, or dry-run: skip
    PLANNED = "planned"  # dry-run: what it would have done
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody answered its approval request in time
    CANCELLED = "cancelled"  # it was waiting when the run was cancelled or no longer needed


# -- parameters ----------------------------------------------------------------------------------

ParamType = Literal["string", "integer", "number", "boolean", "list"]
PARAM_TYPES: tuple[ParamType, ...] = ("string", "integer", "number", "boolean", "list")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, kw_only=True)
class Param:
    """A declared input: of a runbook (from an alert's labels, a form, the CLI) or of an action."""

    name: str
    type: ParamType = "string"
    description: str = ""
    default: Any = None  # may hold `${...}` over settings; None: none
    required: bool = False
    pattern: str | None = None  # full match, for strings and each item of a list
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_items: int = 100
    label: str | None = None  # the alert label it may come from (default: the same name)

    @property
    def alert_label(self) -> str:
        return self.label or self.name

    def coerce(self, raw: Any) -> Any:
        """The value as this parameter's type, validated; raises ParamError naming the param."""
        value = self._typed(raw)
        if self.type == "list":
            if len(value) > self.max_items:
                raise ParamError(self.name, f"at most {self.max_items} items")
            for item in value:
                self._check_text(item)
        elif self.type == "string":
            self._check_text(value)
        if self.type in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                raise ParamError(self.name, f"{value} is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ParamError(self.name, f"{value} is above the maximum {self.maximum:g}")
        if self.choices and value not in self.choices:
            raise ParamError(
                self.name, f"{value!r} is not one of {', '.join(map(str, self.choices))}"
            )
        return value

    def _typed(self, raw: Any) -> Any:
        kind = self.type
        if kind == "string":
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise ParamError(self.name, f"expected text, got {type(raw).__name__}")
            return str(raw)
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ParamError(self.name, f"{raw!r} is not true or false")
        if kind == "integer":
            if isinstance(raw, bool):
                raise ParamError(self.name, "expected a whole number, got true/false")
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, int):
                return raw
            text = str(raw).strip()
            if re.fullmatch(r"[+-]?\d{1,18}", text):
                return int(text)
            raise ParamError(self.name, f"{raw!r} is not a whole number")
        if kind == "number":
            if isinstance(raw, bool):
                raise ParamError(self.name, "expected a number, got true/false")
            if isinstance(raw, int | float):
                return float(raw)
            text = str(raw).strip()
            if re.fullmatch(r"[+-]?(\d{1,18}(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?", text):
                return float(text)
            raise ParamError(self.name, f"{raw!r} is not a number")
        # list: a YAML list, or comma-separated text from a label, a form or the command line
        if isinstance(raw, str):
            return [item.strip() for item in raw.split(",") if item.strip()]
        if isinstance(raw, list | tuple) and all(
            isinstance(i, str | int | float) and not isinstance(i, bool) for i in raw
        ):
            return [str(i) for i in raw]
        raise ParamError(self.name, "expected a list of text")

    def _check_text(self, value: str) -> None:
        if len(value) > 1024:
            raise ParamError(self.name, "longer than 1024 characters")
        if any(ord(c) < 32 for c in value):
            raise ParamError(self.name, "control characters are not allowed")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ParamError(self.name, f"{value!r} does not match {self.pattern}")


# -- runbooks ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verification:
    """What must hold after an action: a check or a read-only action, and its expectation."""

    kind: Literal["check", "action"]
    target: str
    expect: str
    with_: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 1  # effects take a moment: look again this many times in all
    delay: float = 2.0  # seconds between looks


@dataclass(frozen=True, kw_only=True)
class Compensation:
    """The action that undoes a step's action when its post-check fails."""

    action: str
    with_: Mapping[str, Any] = field(default_factory=dict)


OnFailure = str  # "abort", "continue" or a later step's id
DryRunBehaviour = Literal["run", "skip", "plan"]


@dataclass(frozen=True, kw_only=True)
class Step:
    id: str
    kind: StepKind
    target: Any  # check name, action name, query spec (mapping), or the text shown to people
    line: int  # where its fence opens in the file
    title: str = ""
    source: str = ""  # the block's YAML, as written
    expect: str | None = None
    when: str | None = None
    with_: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 60.0
    retries: int = 0
    on_failure: OnFailure = "abort"
    post_check: Verification | None = None
    compensate: Compensation | None = None
    approval: Literal["required"] | None = None  # even when the route allows automation
    dry_run: DryRunBehaviour | None = None  # None: run reads, plan everything else

    @property
    def label(self) -> str:
        return self.title or self.id


@dataclass(frozen=True, kw_only=True)
class Trigger:
    alertname: str
    labels: Mapping[str, str] = field(default_factory=dict)  # further equality matchers

    def matches(self, alert_labels: Mapping[str, str]) -> bool:
        if alert_labels.get("alertname") != self.alertname:
            return False
        return all(alert_labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True, kw_only=True)
class Runbook:
    id: str
    title: str
    path: str
    source: str  # the whole file, kept with each execution so a later edit changes no run
    body: str  # the Markdown after the front matter
    body_line: int  # the file line the body starts on
    summary: str = ""
    triggers: tuple[Trigger, ...] = ()
    params: tuple[Param, ...] = ()
    steps: tuple[Step, ...] = ()
    lock: str | None = None  # `${...}` naming what a run works on; one run per runbook and it

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def position(self, step_id: str) -> int:
        return next(n for n, s in enumerate(self.steps) if s.id == step_id)


# -- executions ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApiCall:
    """One call an action would make: enough to repeat it by hand."""

    service: str  # "lambda", "cloudfront", "dynamodb", "redis", "watchtower"
    operation: str  # the API's own name: UpdateFunctionConfiguration, SCAN
    parameters: Mapping[str, Any]
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        out = {"service": self.service, "operation": self.operation, "parameters": self.parameters}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, kw_only=True)
class Approval:
    requested_at: datetime
    expires_at: datetime
    decision: Literal["approved", "rejected", "expired", "confirmed"] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""


@dataclass(frozen=True, kw_only=True)
class StepRun:
    step_id: str
    position: int
    kind: StepKind
    title: str
    status: StepStatus
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    plan: tuple[Mapping[str, Any], ...] = ()  # the exact calls, for dry-runs and approvers
    error: str = ""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    approval: Approval | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


# A pending run's reason once it found its lock held (machine.begin); the dispatcher passes it
# over until the holder's claim goes (RunbookStore.runnable).
LOCK_WAIT = "waiting: execution "


@dataclass(frozen=True, kw_only=True)
class Execution:
    id: str
    runbook_id: str
    title: str
    status: ExecutionStatus
    mode: Mode
    dry_run: bool
    params: Mapping[str, Any]
    started_by: str
    created_at: datetime
    reason: str = ""
    alert_fingerprint: str | None = None
    alert_name: str | None = None
    lock_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resolved_at: datetime | None = None
    # The alert was delivered firing again after this run ended (its episode's latest such
    # delivery, and how many): the run did not fix it, or not yet.
    still_firing_at: datetime | None = None
    repeats: int = 0
    steps: tuple[StepRun, ...] = ()

    @property
    def still_firing(self) -> bool:
        return self.still_firing_at is not None and self.resolved_at is None

    @property
    def waiting_step(self) -> StepRun | None:
        return next((s for s in self.steps if s.status is StepStatus.WAITING), None)

    def evidence(self) -> list[StepRun]:
        """The steps that ran before the one waiting (what an approver decides on)."""
        waiting = self.waiting_step
        limit = waiting.position if waiting is not None else len(self.steps)
        return [
            s
            for s in self.steps
            if s.position < limit and s.status not in (StepStatus.PENDING, StepStatus.SKIPPED)
        ]


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One alert episode's row: which run it started, and what arrived after that run ended."""

    key: str
    runbook_id: str
    fingerprint: str
    starts_at: datetime
    execution_id: str
    runs: int = 1
    repeats: int = 0
    still_firing_at: datetime | None = None


def episode_key(runbook_id: str, fingerprint: str, starts_at: datetime) -> str:
    moment = starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{runbook_id}:{fingerprint}:{moment}"


@dataclass(frozen=True, kw_only=True)
class StoredNotification:
    """A webhook call as Alertmanager sent it (the body verbatim), kept for replay."""

    id: int
    received_at: datetime
    receiver: str
    status: str
    alerts: int
    body: str


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    at: datetime
    execution_id: str
    runbook_id: str
    actor: str
    action: str  # started, approved, rejected, confirmed, cancelled, cancel-requested, expired,
    # alert-resolved, resumed, interrupted, refused, compensated, finished
    step_id: str | None = None
    comment: str = ""


@dataclass(frozen=True, kw_only=True)
class Record:
    """An execution with what only the engine needs: the runbook snapshot and the worker's lease."""

    execution: Execution
    source: str  # the runbook as it was when the run started
    path: str
    cursor: int = 0  # the next step's position
    owner: str | None = None  # the worker advancing it now
    heartbeat_at: datetime | None = None
    stop_reason: str | None = None  # a cancel or resolution asked for while a step ran


class Keep(enum.Enum):
    """Marker: leave this field as it is (for fields that may be set to None)."""

    KEEP = "keep"


KEEP = Keep.KEEP


class Anyone(enum.Enum):
    """Marker: a change that applies whoever holds the run (a person's decision, a cancel)."""

    ANY = "any"


ANY_OWNER = Anyone.ANY
Owner = str | Anyone | None  # the worker that must hold the run for a change to apply


@dataclass(frozen=True, kw_only=True)
class RunChange:
    """What changes on an execution; a field left at None (or KEEP) stays as it is."""

    status: ExecutionStatus | None = None
    reason: str | None = None
    cursor: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resolved_at: datetime | None = None
    owner: str | Keep | None = KEEP
    stop_reason: str | Keep | None = KEEP

    @property
    def empty(self) -> bool:
        return self == RunChange()


@dataclass(frozen=True, kw_only=True)
class StepChange:
    """What changes on one step of an execution; a field left at None stays as it is."""

    status: StepStatus | None = None
    inputs: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] | None = None
    plan: tuple[Mapping[str, Any], ...] | None = None
    error: str | None = None
    attempts: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    requested_at: datetime | None = None  # an approval asked for, until expires_at
    expires_at: datetime | None = None
    decision: Literal["approved", "rejected", "expired", "confirmed"] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None


def execution_json(execution: Execution) -> dict[str, Any]:
    """The execution as JSON (GET /api/v1/executions, `watchtower runbook run --json`)."""

    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": execution.id,
        "runbook": execution.runbook_id,
        "title": execution.title,
        "status": execution.status.value,
        "mode": execution.mode,
        "dry_run": execution.dry_run,
        "reason": execution.reason,
        "params": dict(execution.params),
        "started_by": execution.started_by,
        "alert": {"fingerprint": execution.alert_fingerprint, "name": execution.alert_name}
        if execution.alert_fingerprint
        else None,
        "created_at": moment(execution.created_at),
        "started_at": moment(execution.started_at),
        "finished_at": moment(execution.finished_at),
        "resolved_at": moment(execution.resolved_at),
        "still_firing": execution.still_firing,
        "still_firing_at": moment(execution.still_firing_at),
        "repeats_after_finish": execution.repeats,
        "steps": [
            {
                "id": s.step_id,
                "kind": s.kind,
                "title": s.title,
                "status": s.status.value,
                "attempts": s.attempts,
                "error": s.error,
                "started_at": moment(s.started_at),
                "finished_at": moment(s.finished_at),
                "approval": {
                    "requested_at": moment(s.approval.requested_at),
                    "expires_at": moment(s.approval.expires_at),
                    "decision": s.approval.decision,
                    "decided_by": s.approval.decided_by,
                    "decided_at": moment(s.approval.decided_at),
                    "comment": s.approval.comment,
                }
                if s.approval is not None
                else None,
            }
            for s in execution.steps
        ],
    }


# -- what expressions may read ------------------------------------------------------------------

SETTINGS_NAMES = frozenset(
    {
        "table",
        "bucket",
        "lambda_function",
        "lambda_alias",
        "log_group",
        "cloudfront_distribution_id",
        "region",
        "metrics_namespace",
        "legacy_table",
        "public_url",
        "sandbox",
        "prometheus_configured",
        "alertmanager_configured",
        "image_redis_configured",
        "legacy_database_configured",
    }
)
ALERT_NAMES = frozenset({"name", "fingerprint"})
EXECUTION_NAMES = frozenset({"id", "mode", "dry_run", "started_by"})


def settings_view(settings: Any) -> dict[str, Any]:
    """The settings runbooks may read: names of resources, never a secret or a URL with one."""
    return {
        "table": settings.table,
        "bucket": settings.bucket,
        "lambda_function": settings.lambda_function,
        "lambda_alias": settings.lambda_alias or "",
        "log_group": settings.log_group,
        "cloudfront_distribution_id": settings.cloudfront_distribution_id or "",
        "region": settings.region,
        "metrics_namespace": settings.metrics_namespace,
        "legacy_table": settings.legacy_table,
        "public_url": settings.public_url,
        "sandbox": settings.sandbox,
        "prometheus_configured": bool(settings.prometheus_url),
        "alertmanager_configured": bool(getattr(settings, "alertmanager_url", None)),
        "image_redis_configured": bool(settings.image_redis_url),
        "legacy_database_configured": bool(settings.legacy_database_url),
    }


@dataclass(frozen=True, kw_only=True)
class NewRun:
    """An alert episode's first run, to create with others (RunbookStore.create_many)."""

    record: Record
    claim: str | None
    episode: Episode
    audit: tuple[AuditEntry, ...] = ()
