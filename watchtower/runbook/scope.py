"""What a step's expressions read, and what its inputs and outputs look like. Pure.

The namespace (`params`, `settings`, `steps`, `alert`, `execution`), a step's inputs resolved
from it and checked, the judging of `expect:`, outputs made JSON-safe, and a run's parameters
(from a form, the command line or an alert's labels) with its lock key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watchtower.runbook.errors import ExpressionError, ParamError
from watchtower.runbook.expressions import compile_expression, evaluate, render
from watchtower.runbook.model import Execution, Runbook, Step, StepStatus, settings_view

if TYPE_CHECKING:
    from watchtower.model import Result
    from watchtower.runbook.actions.base import Action

PROMQL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-")


def namespace(execution: Execution, settings: Any) -> dict[str, Any]:
    """What `${...}`, `when:` and `expect:` read while this execution runs."""
    steps: dict[str, Any] = {}
    for run in execution.steps:
        entry = dict(run.outputs)
        entry["state"] = run.status.value
        entry["passed"] = run.status is StepStatus.SUCCEEDED
        steps[run.step_id] = entry
    return {
        "params": dict(execution.params),
        "settings": settings_view(settings),
        "steps": steps,
        "alert": {
            "name": execution.alert_name or "",
            "fingerprint": execution.alert_fingerprint or "",
        },
        "execution": {
            "id": execution.id,
            "mode": execution.mode,
            "dry_run": execution.dry_run,
            "started_by": execution.started_by,
        },
    }


def inputs(
    step: Step, action: Action | None, names: Mapping[str, Any], settings: Any
) -> dict[str, Any]:
    """The step's inputs resolved and checked: what runs, and what an approver sees."""
    if step.kind == "check":
        values = render(dict(step.with_), names)
        out: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParamError(key, f"a check parameter must be a number, not {value!r}")
            out[key] = float(value)
        return {"check": step.target, "params": out}
    if step.kind == "query":
        kind, spec = next(iter(step.target.items()))
        if kind == "promql":
            return {"promql": promql(spec, names)}
        if kind == "sql":
            return {"sql": spec, "params": render(dict(step.with_), names)}
        rendered = render(spec, names)
        if kind == "logs":
            rendered.setdefault("group", settings.log_group)
        return {kind: rendered}
    if step.kind == "action":
        assert action is not None
        return action.validate(render(dict(step.with_), names))
    return {"text": render(step.target, names)}


def planned_verification(step: Step) -> dict[str, Any]:
    """What an approver (or a dry run) is shown of the post-check and the compensation."""
    out: dict[str, Any] = {}
    if step.post_check is not None:
        out["post_check"] = {
            "kind": step.post_check.kind,
            "target": step.post_check.target,
            "expect": step.post_check.expect,
        }
    if step.compensate is not None:
        out["compensate"] = {"action": step.compensate.action}
    return out


def promql(text: str, names: Mapping[str, Any]) -> str:
    """PromQL with `${...}` filled in; a value that is not a plain name or number is refused, so
    a parameter can never change the query's shape."""

    def safe(value: Any) -> str:
        shown = str(value) if not isinstance(value, bool) else str(value).lower()
        if not shown or not set(shown) <= PROMQL_SAFE:
            raise ExpressionError(
                f"{shown!r} cannot go into a PromQL query (letters, digits, _ . : / - only)"
            )
        return shown

    return str(render(text, names, text_of=safe))


def judge(expect: str, names: Mapping[str, Any], outputs: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether `expect` holds over the step's outputs (and figures), and if not, what was seen."""
    scope = {**names, **flat(outputs)}
    try:
        held = bool(evaluate(expect, scope))
    except ExpressionError as exc:
        return False, f"expect: {exc}"
    if held:
        return True, ""
    seen_names = sorted(compile_expression(expect).names())
    seen = ", ".join(f"{n}={scope[n]!r}" for n in seen_names if n in scope and n not in names)
    return False, f"expected {expect}" + (f"; saw {seen}" if seen else "")


def flat(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs as names an `expect:` reads: a check's figures are names of their own."""
    scope = dict(outputs)
    figures = outputs.get("figures")
    if isinstance(figures, dict):
        scope = {**figures, **scope}
    return scope


def result_json(result: Result) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "reason": result.reason,
        "figures": dict(result.figures),
        "thresholds": dict(result.thresholds),
        "observed_at": result.observed_at.isoformat(),
    }


def plain(value: Any) -> Any:
    """JSON-safe data."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# -- a run's parameters ---------------------------------------------------------------------------


def run_params(
    runbook: Runbook, given: Mapping[str, Any], settings: Any, *, from_labels: bool
) -> dict[str, Any]:
    """The run's parameters, typed and checked; from an alert's labels, undeclared ones dropped,
    else undeclared ones refused. Raises ParamError naming the parameter."""
    if not from_labels:
        declared = {p.name for p in runbook.params}
        for name in given:
            if name not in declared:
                raise ParamError(name, f"runbook {runbook.id} has no such parameter")
    names = {"settings": settings_view(settings)}
    values: dict[str, Any] = {}
    for param in runbook.params:
        key = param.alert_label if from_labels else param.name
        raw = given.get(key)
        if raw is None or raw == "":
            if param.default is None:
                if param.required:
                    raise ParamError(param.name, "is required and has no default")
                values[param.name] = None
                continue
            raw = render(param.default, names)
        values[param.name] = param.coerce(raw)
    return values


def param_defaults(runbook: Runbook, settings: Any) -> dict[str, Any]:
    """Each parameter's default as a run would get it (settings filled in)."""
    names = {"settings": settings_view(settings)}
    out: dict[str, Any] = {}
    for param in runbook.params:
        try:
            out[param.name] = render(param.default, names)
        except ExpressionError:
            out[param.name] = param.default
    return out


def lock_key(runbook: Runbook, params: Mapping[str, Any], settings: Any) -> str | None:
    """The claim a run of this runbook holds while it runs: one per runbook and target."""
    if runbook.lock is None:
        return None
    target = render(runbook.lock, {"params": params, "settings": settings_view(settings)})
    return f"lock:{runbook.id}:{target}"
