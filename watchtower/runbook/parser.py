"""Runbook files: Markdown with a YAML front matter and fenced `step` blocks. Reads no files
except in `load_*`; everything else works on text.

A file is parsed and validated in one pass, and every problem found is reported with the line it
is on (`runbooks/x.md:12: unknown action 'lambda.reboot'`), not only the first. A runbook with a
problem is never run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from watchtower.runbook.actions.base import Action
from watchtower.runbook.errors import ExpressionError, ParamError
from watchtower.runbook.expressions import (
    Expression,
    compile_expression,
    expressions_in,
    template_expressions,
)
from watchtower.runbook.model import (
    ALERT_NAMES,
    EXECUTION_NAMES,
    PARAM_TYPES,
    QUERY_KINDS,
    SETTINGS_NAMES,
    STEP_KINDS,
    Compensation,
    Param,
    Runbook,
    Step,
    Trigger,
    Verification,
)

MAX_FILE_BYTES = 256 * 1024
ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FRONT_KEYS = {"id", "title", "summary", "triggers", "params", "lock"}
PARAM_KEYS = {
    "type",
    "description",
    "default",
    "required",
    "pattern",
    "choices",
    "min",
    "max",
    "max_items",
    "label",
}
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


def catalog() -> Catalog:
    """The registered checks and actions."""
    from watchtower.checks import registry as checks
    from watchtower.runbook.actions import registry as actions

    return Catalog(
        checks={n: frozenset(c.defaults) for n, c in checks().items()},
        actions=actions(),
    )


@dataclass
class _File:
    path: str
    problems: list[Problem] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))


def parse(text: str, *, path: str, catalog: Catalog) -> tuple[Runbook | None, list[Problem]]:
    """The runbook in `text`, or None when it has problems; and every problem found."""
    f = _File(path)
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        f.problem(1, "no front matter: the file must start with a line '---'")
        return None, f.problems
    end = next((n for n in range(1, len(lines)) if lines[n].strip() in ("---", "...")), None)
    if end is None:
        f.problem(1, "the front matter is not closed with a line '---'")
        return None, f.problems
    front_lines = lines[1:end]
    front = _yaml("\n".join(front_lines), f, first_line=2)
    if front is None:
        return None, f.problems
    if not isinstance(front, dict):
        f.problem(2, "the front matter must be a mapping (id:, title:, …)")
        return None, f.problems

    def front_line(key: str) -> int:
        return 2 + _key_line(front_lines, key)

    for key in sorted(set(front) - FRONT_KEYS):
        f.problem(front_line(key), f"unknown front matter key {key!r}")
    runbook_id = front.get("id")
    if not isinstance(runbook_id, str) or not ID.fullmatch(runbook_id):
        f.problem(front_line("id"), "id: must be lower-case letters, digits, '-' or '_'")
        runbook_id = None
    elif Path(path).suffix == ".md" and Path(path).stem != runbook_id:
        f.problem(front_line("id"), f"id {runbook_id!r} does not match the file name")
    title = front.get("title")
    if not isinstance(title, str) or not title.strip():
        f.problem(front_line("title"), "title: is missing")
    summary = front.get("summary", "")
    if not isinstance(summary, str):
        f.problem(front_line("summary"), "summary: must be text")
        summary = ""
    triggers = _triggers(front.get("triggers", []), f, front_line("triggers"))
    params = _params(front.get("params", {}), f, front_line("params"), front_lines)
    declared = front.get("params")
    # Names declared but invalid are reported once, where declared; not again where used.
    param_names = {str(n) for n in declared} if isinstance(declared, dict) else set()
    lock = front.get("lock")
    if lock is not None:
        if not isinstance(lock, str):
            f.problem(front_line("lock"), "lock: must be text such as ${params.table}")
            lock = None
        else:
            _check_expressions(lock, f, front_line("lock"), "lock", params=param_names, steps=set())

    body_start = end + 1  # index of the first body line
    body = "\n".join(lines[body_start:])
    steps = _steps(body, body_start + 1, f, catalog, param_names)
    changes = [
        s.id
        for s in steps
        if s.kind == "action" and s.target in catalog.actions and catalog.actions[s.target].mutating
    ]
    if changes and lock is None:
        f.problem(
            front_line("id"),
            f"steps {', '.join(changes)} change things: declare what a run locks, "
            "e.g. lock: ${params.table}",
        )
    if runbook_id is None or f.problems:
        return None, sorted(f.problems)
    return (
        Runbook(
            id=runbook_id,
            title=str(title).strip(),
            path=path,
            source=text,
            body=body,
            body_line=body_start + 1,
            summary=summary.strip(),
            triggers=tuple(triggers),
            params=tuple(params),
            steps=tuple(steps),
            lock=lock,
        ),
        [],
    )


def _yaml(text: str, f: _File, *, first_line: int) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + (mark.line if mark is not None else 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        f.problem(line, f"YAML: {problem}")
        return None


def _key_line(lines: list[str], key: str) -> int:
    """The 0-based index of the line where a top-level `key:` is written (0 if not found)."""
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    return next((n for n, line in enumerate(lines) if pattern.match(line)), 0)


def _triggers(raw: Any, f: _File, line: int) -> list[Trigger]:
    if not isinstance(raw, list):
        f.problem(line, "triggers: must be a list such as [{alertname: ImageDynamoDBThrottling}]")
        return []
    out = []
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("alertname"), str):
            f.problem(line, f"triggers[{n}]: needs an alertname")
            continue
        labels = {k: v for k, v in item.items() if k != "alertname"}
        if not all(isinstance(v, str) for v in labels.values()):
            f.problem(line, f"triggers[{n}]: label values must be text")
            continue
        out.append(Trigger(alertname=item["alertname"], labels=labels))
    return out


def _params(raw: Any, f: _File, line: int, front_lines: list[str]) -> list[Param]:
    if not isinstance(raw, dict):
        f.problem(line, "params: must be a mapping of name to {type:, pattern:, default:, …}")
        return []
    out = []
    first = line - 2  # index of `params:` among the front matter's lines
    for name, spec in raw.items():
        where = f"params.{name}"
        own = re.compile(rf"^\s+{re.escape(str(name))}\s*:")
        at = next(
            (2 + n for n in range(first + 1, len(front_lines)) if own.match(front_lines[n])), line
        )
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            f.problem(at, f"{where}: a name must be lower-case letters, digits and '_'")
            continue
        if not isinstance(spec, dict):
            f.problem(at, f"{where}: must be a mapping (type:, pattern:, default:, …)")
            continue
        param = _param(name, spec, f, at, where)
        if param is not None:
            out.append(param)
    return out


def _param(name: str, spec: Mapping[str, Any], f: _File, line: int, where: str) -> Param | None:
    before = len(f.problems)
    for key in sorted(set(spec) - PARAM_KEYS):
        f.problem(line, f"{where}: unknown key {key!r}")
    kind = spec.get("type", "string")
    if kind not in PARAM_TYPES:
        f.problem(line, f"{where}: type {kind!r} is not one of {', '.join(PARAM_TYPES)}")
        return None
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            f.problem(line, f"{where}: pattern does not compile: {exc}")
    if kind in ("string", "list") and pattern is None and "choices" not in spec:
        # Values may come from alert labels: a string parameter must say what it accepts.
        f.problem(line, f"{where}: a {kind} parameter needs a pattern: or choices:")
    choices = spec.get("choices", [])
    if not isinstance(choices, list):
        f.problem(line, f"{where}: choices must be a list")
        choices = []
    for bound in ("min", "max"):
        if bound in spec and not isinstance(spec[bound], int | float):
            f.problem(line, f"{where}: {bound} must be a number")
    label = spec.get("label")
    if label is not None and not isinstance(label, str):
        f.problem(line, f"{where}: label must be text (an alert label's name)")
    if len(f.problems) > before:
        return None
    param = Param(
        name=name,
        type=kind,
        description=str(spec.get("description", "")),
        default=spec.get("default"),
        required=bool(spec.get("required", False)),
        pattern=str(pattern) if pattern is not None else None,
        choices=tuple(choices),
        minimum=spec.get("min"),
        maximum=spec.get("max"),
        max_items=int(spec.get("max_items", 100)),
        label=label,
    )
    default = param.default
    if default is not None:
        try:
            exprs = expressions_in(default)
        except ExpressionError as exc:
            f.problem(line, f"{where}: default: {exc}")
            return None
        if exprs:
            for expr in exprs:
                for path in expr.paths():
                    if path[0] != "settings" or len(path) < 2 or path[1] not in SETTINGS_NAMES:
                        f.problem(line, f"{where}: a default may only read settings.<name>")
        else:
            try:
                param.coerce(default)
            except ParamError as exc:
                f.problem(line, f"{where}: default: {exc.problem}")
    return param


def _steps(body: str, first_line: int, f: _File, catalog: Catalog, params: set[str]) -> list[Step]:
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
    f: _File,
    catalog: Catalog,
    params: set[str],
    earlier: list[str],
) -> Step | None:
    before = len(f.problems)
    raw = _yaml(content, f, first_line=line + 1)
    if raw is None and len(f.problems) > before:
        return None
    if not isinstance(raw, dict):
        f.problem(line, "a step block must be a YAML mapping (id:, and check:/action:/…)")
        return None
    block = content.splitlines()

    def at(key: str) -> int:
        return line + 1 + _key_line(block, key)

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
    _check_expressions(with_, f, at("with"), f"step {step_id!r}: with", **scope.kw())
    if kind == "query":
        _check_expressions(target, f, at("query"), f"step {step_id!r}: query", **scope.kw())

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
    f: _File,
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


def _check_expressions(
    value: Any,
    f: _File,
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
    f: _File,
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


def _query(spec: Any, with_: Mapping[str, Any], f: _File, line: int, step_id: str) -> None:
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
    action: Action, with_: Mapping[str, Any], f: _File, line: int, step_id: str
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
    raw: Any, f: _File, line: int, step_id: str, catalog: Catalog, scope: _Scope
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
    _check_expressions(with_, f, line, f"{where}: with", **inner.kw())
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
    raw: Any, f: _File, line: int, step_id: str, catalog: Catalog, scope: _Scope
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
    _check_expressions(with_, f, line, f"{where}: with", **inner.kw())
    return Compensation(action=raw["action"], with_=with_)


# -- files -----------------------------------------------------------------------------------------


def default_dir() -> Path:
    """runbooks/ of the source tree this package runs from."""
    return Path(__file__).resolve().parents[2] / "runbooks"


def runbook_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(sorted(path.glob("*.md")) if path.is_dir() else [path])
    return files


def load(paths: Iterable[str | Path], catalog: Catalog) -> tuple[dict[str, Runbook], list[Problem]]:
    """Every valid runbook in these files and directories, and every problem found in them."""
    runbooks: dict[str, Runbook] = {}
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for path in runbook_files(paths):
        shown = _shown(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(shown, 0, f"cannot read it: {exc.strerror}"))
            continue
        if len(data) > MAX_FILE_BYTES:
            problems.append(Problem(shown, 0, f"larger than {MAX_FILE_BYTES // 1024} KiB"))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(shown, 0, "not UTF-8 text"))
            continue
        runbook, found = parse(text, path=shown, catalog=catalog)
        problems.extend(found)
        if runbook is None:
            continue
        if runbook.id in first:
            problems.append(
                Problem(shown, 2, f"runbook id {runbook.id!r} is also used by {first[runbook.id]}")
            )
            continue
        first[runbook.id] = shown
        runbooks[runbook.id] = runbook
    return runbooks, problems


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_source(text: str, *, path: str, catalog: Catalog) -> Runbook:
    """A runbook from text known to be valid (an execution's snapshot); raises RunbookInvalid."""
    from watchtower.runbook.errors import RunbookInvalid

    runbook, problems = parse(text, path=path, catalog=catalog)
    if runbook is None:
        raise RunbookInvalid([str(p) for p in problems])
    return runbook


__all__ = [
    "Catalog",
    "Problem",
    "catalog",
    "default_dir",
    "load",
    "parse",
    "parse_source",
    "template_expressions",
]
