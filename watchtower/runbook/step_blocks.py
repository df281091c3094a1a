"""The fenced `step` blocks of a runbook: each read and validated against the catalog of checks
and actions, every problem reported with its line. Works on text only; `parser` calls it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from markdown_it import MarkdownIt

from watchtower.runbook.actions.base import Action
from watchtower.runbook.errors import ExpressionError, ParamError
from watchtower.runbook.expressions import Expression, compile_expression, expressions_in
from watchtower.runbook.model import (
    ALERT_NAMES,
    EXECUTION_NAMES,
    QUERY_KINDS,
    SETTINGS_NAMES,
    STEP_KINDS,
    Compensation,
    Step,
    Verification,
)

ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STEP_KEYS = {
    "id",
    "title",
    *STEP_KINDS,
    "expect",
    "when",
    "with",
    "timeout",
    "retries",
    "on_failure",
    "post_check",
    "compensate",
    "dry_run",
}
# Keys that look like a step kind someone meant, so the message can say "unknown step kind".
_KIND_LIKE = {"shell", "run", "script", "command", "exec", "http", "lambda", "python", "sh", "bash"}
MAX_TIMEOUT = 3600
MAX_RETRIES = 5
CLOUDWATCH_STATS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_SQL_START = re.compile(r"\s*(select|with)\b", re.IGNORECASE)
# `{legacy_table}` in a query's SQL is WATCHTOWER_LEGACY_TABLE, composed as an identifier when the
# query runs; a literal brace is written twice.
_SQL_BRACES = re.compile(r"\{legacy_table\}|\{\{|\}\}")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """What runbooks may name: checks (with their settable parameters) and actions."""

    checks: Mapping[str, frozenset[str]]
    actions: Mapping[str, Action]


@dataclass
class SourceFile:
    path: str
    problems: list[Problem] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))


def read_yaml(text: str, f: SourceFile, *, first_line: int) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + (mark.line if mark is not None else 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        f.problem(line, f"YAML: {problem}")
        return None


def key_line(lines: list[str], key: str) -> int:
    """The 0-based index of the line where a top-level `key:` is written (0 if not found)."""
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    return next((n for n, line in enumerate(lines) if pattern.match(line)), 0)


def read_steps(
    body: str, first_line: int, f: SourceFile, catalog: Catalog, params: set[str]
) -> list[Step]:
    md = MarkdownIt("commonmark")
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for token in md.parse(body):
        if token.type != "fence" or token.map is None:
            continue
        info = token.info.strip().split()
        if not info or info[0] != "step":
            continue
        line = first_line + token.map[0]
        if token.level != 0:
            f.problem(line, "a step block must not be inside a list or a quote")
            continue
        step = _step(token.content, line, f, catalog, params, [s.id for s in steps])
        if step is None:
            continue
        if step.id in seen:
            f.problem(line, f"duplicate step id {step.id!r} (first on line {seen[step.id]})")
            continue
        seen[step.id] = line
        steps.append(step)
    if not steps and not f.problems:
        f.problem(first_line, "no ```step blocks: a runbook needs at least one step")
    ids = [s.id for s in steps]
    for n, step in enumerate(steps):
        if step.on_failure not in ("abort", "continue"):
            if step.on_failure not in ids:
                f.problem(step.line, f"on_failure: no step {step.on_failure!r} in this runbook")
            elif ids.index(step.on_failure) <= n:
                f.problem(step.line, f"on_failure: {step.on_failure!r} must be a later step")
    return steps


def _step(
    content: str,
    line: int,
    f: SourceFile,
    catalog: Catalog,
    params: set[str],
    earlier: list[str],
) -> Step | None:
    before = len(f.problems)
    raw = read_yaml(content, f, first_line=line + 1)
    if raw is None and len(f.problems) > before:
        return None
    if not isinstance(raw, dict):
        f.problem(line, "a step block must be a YAML mapping (id:, and check:/action:/…)")
        return None
    block = content.splitlines()

    def at(key: str) -> int:
        return line + 1 + key_line(block, key)

    step_id = raw.get("id")
    if not isinstance(step_id, str) or not ID.fullmatch(step_id):
        f.problem(at("id"), "step id: must be lower-case letters, digits, '-' or '_'")
        return None
    for key in sorted(set(raw) - STEP_KEYS):
        if key in _KIND_LIKE:
            f.problem(at(key), f"step {step_id!r}: unknown step kind {key!r}")
        else:
            f.problem(at(key), f"step {step_id!r}: unknown field {key!r}")
    kinds = [k for k in ("check", "query", "action") if k in raw]
    if not kinds:
        kinds = [k for k in ("manual", "approval") if k in raw][:1]
    if len(kinds) > 1:
        f.problem(line, f"step {step_id!r}: one kind per step, not {' and '.join(kinds)}")
        return None
    if not kinds:
        if not any(k in _KIND_LIKE for k in raw):
            f.problem(line, f"step {step_id!r}: no step kind ({', '.join(STEP_KINDS)})")
        return None
    kind = kinds[0]
    target = raw[kind]
    scope = _Scope(params=params, steps=set(earlier))
    with_ = raw.get("with", {})
    if not isinstance(with_, dict):
        f.problem(at("with"), f"step {step_id!r}: with: must be a mapping")
        with_ = {}
    action: Action | None = None
    if kind == "check":
        if not isinstance(target, str) or target not in catalog.checks:
            f.problem(at("check"), f"step {step_id!r}: unknown check {target!r}")
        else:
            for key in sorted(set(with_) - catalog.checks[target]):
                allowed = ", ".join(sorted(catalog.checks[target]))
                f.problem(
                    at("with"), f"step {step_id!r}: check {target} has no {key!r} ({allowed})"
                )
    elif kind == "query":
        _query(target, with_, f, at("query"), step_id)
    elif kind == "action":
        action = catalog.actions.get(target) if isinstance(target, str) else None
        if action is None:
            f.problem(at("action"), f"step {step_id!r}: unknown action {target!r}")
        else:
            _action_inputs(action, with_, f, at("with") if "with" in raw else line, step_id)
    elif not isinstance(target, str) or not target.strip():
        f.problem(at(kind), f"step {step_id!r}: {kind}: must say, in text, what to do")
    elif kind == "approval" and target.strip() in ("required", "auto"):
        f.problem(at(kind), f"step {step_id!r}: an approval step's approval: is the question")
    check_expressions(with_, f, at("with"), f"step {step_id!r}: with", **scope.kw())
    if kind == "query":
        check_expressions(target, f, at("query"), f"step {step_id!r}: query", **scope.kw())

    title = raw.get("title", "")
    if not isinstance(title, str):
        f.problem(at("title"), f"step {step_id!r}: title must be text")
        title = ""
    when = _expression_field(raw, "when", f, at("when"), step_id, scope)
    expect = _expression_field(raw, "expect", f, at("expect"), step_id, scope, expect=True)
    if expect is not None and kind in ("approval", "manual"):
        f.problem(at("expect"), f"step {step_id!r}: a {kind} step has nothing to expect")

    mutating = action is not None and action.mutating
    reads = kind in ("check", "query") or (action is not None and not action.mutating)
    timeout = raw.get("timeout", 60)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (0 < timeout <= MAX_TIMEOUT)
    ):
        f.problem(at("timeout"), f"step {step_id!r}: timeout must be 1 to {MAX_TIMEOUT} seconds")
        timeout = 60
    retries = raw.get("retries", 0)
    if (
        isinstance(retries, bool)
        or not isinstance(retries, int)
        or not (0 <= retries <= MAX_RETRIES)
    ):
        f.problem(at("retries"), f"step {step_id!r}: retries must be 0 to {MAX_RETRIES}")
        retries = 0
    elif retries and not reads:
        f.problem(at("retries"), f"step {step_id!r}: only reads may be retried, not a {kind}")
    on_failure = raw.get("on_failure", "abort")
    if not isinstance(on_failure, str) or not on_failure:
        f.problem(at("on_failure"), f"step {step_id!r}: on_failure: abort, continue or a step id")
        on_failure = "abort"
    dry_run = raw.get("dry_run")
    if dry_run is not None and dry_run not in ("run", "skip", "plan"):
        f.problem(at("dry_run"), f"step {step_id!r}: dry_run: run, skip or plan")
        dry_run = None
    elif dry_run == "run" and not reads:
        f.problem(at("dry_run"), f"step {step_id!r}: dry_run: run is only for reads")
    approval = raw.get("approval") if kind != "approval" else None
    if approval is not None and approval != "required":
        f.problem(at("approval"), f"step {step_id!r}: approval: can only be required")
        approval = None
    elif approval is not None and not mutating:
        f.problem(at("approval"), f"step {step_id!r}: approval: is for mutating actions")

    post_check = None
    compensate = None
    if "post_check" in raw:
        if not mutating:
            f.problem(at("post_check"), f"step {step_id!r}: post_check: is for mutating actions")
        post_check = _post_check(raw["post_check"], f, at("post_check"), step_id, catalog, scope)
    if "compensate" in raw:
        if "post_check" not in raw:
            f.problem(
                at("compensate"),
                f"step {step_id!r}: compensate: runs when the post_check fails; add a post_check",
            )
        compensate = _compensate(raw["compensate"], f, at("compensate"), step_id, catalog, scope)
    if len(f.problems) > before:
        return None
    return Step(
        id=step_id,
        kind=kind,  # type: ignore[arg-type]
        target=target.strip() if isinstance(target, str) else target,
        line=line,
        title=title.strip(),
        source=content,
        expect=expect,
        when=when,
        with_=with_,
        timeout=float(timeout),
        retries=retries,
        on_failure=on_failure,
        post_check=post_check,
        compensate=compensate,
        approval=approval,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class _Scope:
    params: set[str]
    steps: set[str]
    this: bool = False

    def kw(self) -> dict[str, Any]:
        return {"params": self.params, "steps": self.steps, "this": self.this}


def _expression_field(
    raw: Mapping[str, Any],
    key: str,
    f: SourceFile,
    line: int,
    step_id: str,
    scope: _Scope,
    *,
    expect: bool = False,
) -> str | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str):
        f.problem(line, f"step {step_id!r}: {key}: must be an expression (text)")
        return None
    try:
        expr = compile_expression(value)
    except ExpressionError as exc:
        f.problem(line, f"step {step_id!r}: {key}: {exc}")
        return None
    _check_paths([expr], f, line, f"step {step_id!r}: {key}", open_names=expect, **scope.kw())
    return value


def check_expressions(
    value: Any,
    f: SourceFile,
    line: int,
    where: str,
    *,
    params: set[str],
    steps: set[str],
    this: bool = False,
) -> None:
    try:
        exprs = expressions_in(value)
    except ExpressionError as exc:
        f.problem(line, f"{where}: {exc}")
        return
    _check_paths(exprs, f, line, where, params=params, steps=steps, this=this)


def _check_paths(
    exprs: Iterable[Expression],
    f: SourceFile,
    line: int,
    where: str,
    *,
    params: set[str],
    steps: set[str],
    this: bool = False,
    open_names: bool = False,
) -> None:
    """Names an expression reads must exist: declared params, earlier steps, known settings."""
    roots = {"params", "settings", "steps", "alert", "execution"} | ({"this"} if this else set())
    for expr in exprs:
        for path in expr.paths():
            root = path[0]
            if root not in roots:
                if not open_names:  # an expect: may name the step's own figures and outputs
                    f.problem(line, f"{where}: unknown name {root!r} ({', '.join(sorted(roots))})")
                continue
            if len(path) < 2:
                continue
            name = path[1]
            if root == "params" and name not in params:
                f.problem(line, f"{where}: missing parameter {name!r} (declare it in params:)")
            elif root == "settings" and name not in SETTINGS_NAMES:
                f.problem(line, f"{where}: settings has no {name!r}")
            elif root == "steps" and name not in steps:
                f.problem(line, f"{where}: no earlier step {name!r}")
            elif root == "alert" and name not in ALERT_NAMES:
                f.problem(line, f"{where}: alert has no {name!r} (labels reach steps as params)")
            elif root == "execution" and name not in EXECUTION_NAMES:
                f.problem(line, f"{where}: execution has no {name!r}")


def _query(spec: Any, with_: Mapping[str, Any], f: SourceFile, line: int, step_id: str) -> None:
    where = f"step {step_id!r}: query"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in QUERY_KINDS:
        f.problem(line, f"{where}: one of {', '.join(QUERY_KINDS)}, e.g. query: {{promql: '…'}}")
        return
    kind, body = next(iter(spec.items()))
    if kind == "promql":
        if not isinstance(body, str) or not body.strip():
            f.problem(line, f"{where}: promql: must be the query text")
    elif kind == "sql":
        if not isinstance(body, str) or not _SQL_START.match(body):
            f.problem(line, f"{where}: sql: must be one SELECT (or WITH … SELECT)")
        elif ";" in body or "${" in body:
            f.problem(
                line,
                f"{where}: sql: no ';' and no ${{...}}: pass values as %(name)s through with:",
            )
        elif set("{}") & set(_SQL_BRACES.sub("", body)):
            f.problem(
                line,
                f"{where}: sql: the one {{name}} is {{legacy_table}} (the legacy table); write a "
                "literal brace twice",
            )
        else:
            names = set(re.findall(r"%\((\w+)\)s", body))
            for missing in sorted(names - set(with_)):
                f.problem(line, f"{where}: sql: %({missing})s has no value in with:")
    elif kind == "cloudwatch":
        if not isinstance(body, dict):
            f.problem(line, f"{where}: cloudwatch: must be a mapping (namespace:, metric:, …)")
            return
        allowed = {"namespace", "metric", "dimensions", "stat", "window", "period", "region"}
        for key in sorted(set(body) - allowed):
            f.problem(line, f"{where}: cloudwatch: unknown key {key!r}")
        for key in ("namespace", "metric"):
            if not isinstance(body.get(key), str):
                f.problem(line, f"{where}: cloudwatch: {key}: is missing")
        if body.get("stat", "Sum") not in CLOUDWATCH_STATS:
            f.problem(
                line, f"{where}: cloudwatch: stat must be one of {', '.join(CLOUDWATCH_STATS)}"
            )
        if not isinstance(body.get("dimensions", {}), dict):
            f.problem(line, f"{where}: cloudwatch: dimensions must be a mapping")
        for key in ("window", "period"):
            value = body.get(key, 300)
            if not isinstance(value, int) or value <= 0 or value % 60:
                f.problem(line, f"{where}: cloudwatch: {key} must be a multiple of 60 seconds")
    elif kind == "logs":
        if not isinstance(body, dict):
            f.problem(line, f"{where}: logs: must be a mapping (pattern:, window:, …)")
            return
        for key in sorted(set(body) - {"group", "pattern", "window", "limit"}):
            f.problem(line, f"{where}: logs: unknown key {key!r}")
        if not isinstance(body.get("pattern", ""), str):
            f.problem(line, f"{where}: logs: pattern must be text")
        for key, most in (("window", 86400 * 7), ("limit", 1000)):
            value = body.get(key, 1)
            if not isinstance(value, int) or not 0 < value <= most:
                f.problem(line, f"{where}: logs: {key} must be 1 to {most}")


def _action_inputs(
    action: Action, with_: Mapping[str, Any], f: SourceFile, line: int, step_id: str
) -> None:
    names = {p.name for p in action.inputs}
    for key in sorted(set(with_) - names):
        f.problem(line, f"step {step_id!r}: {action.name} has no input {key!r}")
    for param in action.inputs:
        if param.required and param.default is None and param.name not in with_:
            f.problem(line, f"step {step_id!r}: {action.name} needs {param.name!r} in with:")
        value = with_.get(param.name)
        if value is not None and not expressions_in_safe(value):
            try:
                param.coerce(value)
            except ParamError as exc:
                f.problem(line, f"step {step_id!r}: with: {exc}")


def expressions_in_safe(value: Any) -> bool:
    """True when the value holds a `${...}` (it is typed when it runs, not now)."""
    try:
        return bool(expressions_in(value))
    except ExpressionError:
        return True  # reported by the expression check


def _post_check(
    raw: Any, f: SourceFile, line: int, step_id: str, catalog: Catalog, scope: _Scope
) -> Verification | None:
    where = f"step {step_id!r}: post_check"
    if not isinstance(raw, dict):
        f.problem(line, f"{where}: must be a mapping with check: or action:, and expect:")
        return None
    for key in sorted(set(raw) - {"check", "action", "with", "expect", "attempts", "delay"}):
        f.problem(line, f"{where}: unknown key {key!r}")
    kinds = [k for k in ("check", "action") if k in raw]
    if len(kinds) != 1:
        f.problem(line, f"{where}: needs one of check: or action:")
        return None
    kind = kinds[0]
    target = raw[kind]
    with_ = raw.get("with", {})
    if not isinstance(with_, dict):
        f.problem(line, f"{where}: with: must be a mapping")
        with_ = {}
    if kind == "check" and (not isinstance(target, str) or target not in catalog.checks):
        f.problem(line, f"{where}: unknown check {target!r}")
    if kind == "action":
        action = catalog.actions.get(target) if isinstance(target, str) else None
        if action is None:
            f.problem(line, f"{where}: unknown action {target!r}")
        elif action.mutating:
            f.problem(line, f"{where}: {target} changes things; a post-check must only read")
        else:
            _action_inputs(action, with_, f, line, step_id)
    expect = raw.get("expect")
    if not isinstance(expect, str):
        f.problem(line, f"{where}: expect: is missing (what must hold after the action)")
        return None
    try:
        expr = compile_expression(expect)
    except ExpressionError as exc:
        f.problem(line, f"{where}: expect: {exc}")
        return None
    inner = _Scope(params=scope.params, steps=scope.steps, this=True)
    _check_paths([expr], f, line, f"{where}: expect", open_names=True, **inner.kw())
    check_expressions(with_, f, line, f"{where}: with", **inner.kw())
    attempts = raw.get("attempts", 1)
    delay = raw.get("delay", 2)
    if not isinstance(attempts, int) or not 1 <= attempts <= 30:
        f.problem(line, f"{where}: attempts must be 1 to 30")
        attempts = 1
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 300:
        f.problem(line, f"{where}: delay must be 0 to 300 seconds")
        delay = 2
    return Verification(
        kind=kind,  # type: ignore[arg-type]
        target=target,
        expect=expect,
        with_=with_,
        attempts=attempts,
        delay=delay,
    )


def _compensate(
    raw: Any, f: SourceFile, line: int, step_id: str, catalog: Catalog, scope: _Scope
) -> Compensation | None:
    where = f"step {step_id!r}: compensate"
    if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
        f.problem(line, f"{where}: must be a mapping with action: and with:")
        return None
    for key in sorted(set(raw) - {"action", "with"}):
        f.problem(line, f"{where}: unknown key {key!r}")
    action = catalog.actions.get(raw["action"])
    with_ = raw.get("with", {})
    if not isinstance(with_, dict):
        f.problem(line, f"{where}: with: must be a mapping")
        return None
    if action is None:
        f.problem(line, f"{where}: unknown action {raw['action']!r}")
    else:
        _action_inputs(action, with_, f, line, step_id)
    inner = _Scope(params=scope.params, steps=scope.steps, this=True)
    check_expressions(with_, f, line, f"{where}: with", **inner.kw())
    return Compensation(action=raw["action"], with_=with_)
