"""Runbook files: Markdown with a YAML front matter and fenced `step` blocks. Reads no files
except in `load_*`; everything else works on text.

A file is parsed and validated in one pass, and every problem found is reported with the line it
is on (`runbooks/x.md:12: unknown action 'lambda.reboot'`), not only the first. A runbook with a
problem is never run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from watchtower.runbook.errors import ExpressionError, ParamError
from watchtower.runbook.expressions import (
    expressions_in,
    template_expressions,
)
from watchtower.runbook.model import (
    PARAM_TYPES,
    SETTINGS_NAMES,
    Param,
    Runbook,
    Trigger,
)
from watchtower.runbook.step_blocks import (
    ID,
    Catalog,
    Problem,
    SourceFile,
    check_expressions,
    key_line,
    read_steps,
    read_yaml,
)

MAX_FILE_BYTES = 256 * 1024
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


def catalog() -> Catalog:
    """The registered checks and actions."""
    from watchtower.checks import registry as checks
    from watchtower.runbook.actions import registry as actions

    return Catalog(
        checks={n: frozenset(c.defaults) for n, c in checks().items()},
        actions=actions(),
    )


def parse(text: str, *, path: str, catalog: Catalog) -> tuple[Runbook | None, list[Problem]]:
    """The runbook in `text`, or None when it has problems; and every problem found."""
    f = SourceFile(path)
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        f.problem(1, "no front matter: the file must start with a line '---'")
        return None, f.problems
    end = next((n for n in range(1, len(lines)) if lines[n].strip() in ("---", "...")), None)
    if end is None:
        f.problem(1, "the front matter is not closed with a line '---'")
        return None, f.problems
    front_lines = lines[1:end]
    front = read_yaml("\n".join(front_lines), f, first_line=2)
    if front is None:
        return None, f.problems
    if not isinstance(front, dict):
        f.problem(2, "the front matter must be a mapping (id:, title:, …)")
        return None, f.problems

    def front_line(key: str) -> int:
        return 2 + key_line(front_lines, key)

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
            check_expressions(lock, f, front_line("lock"), "lock", params=param_names, steps=set())

    body_start = end + 1  # index of the first body line
    body = "\n".join(lines[body_start:])
    steps = read_steps(body, body_start + 1, f, catalog, param_names)
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


def _triggers(raw: Any, f: SourceFile, line: int) -> list[Trigger]:
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


def _params(raw: Any, f: SourceFile, line: int, front_lines: list[str]) -> list[Param]:
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


def _param(
    name: str, spec: Mapping[str, Any], f: SourceFile, line: int, where: str
) -> Param | None:
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
