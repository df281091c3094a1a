"""The packages' boundaries (docs/architecture.md): what may never import what, and no cycles.

* `FORBIDDEN` is the one table: a module or package -> the top-level packages it must never
  import. Each row is checked twice: in a fresh interpreter that imports every module of the row
  and then reads `sys.modules`, so what it pulls in indirectly counts; and in the source (`ast`),
  so an import inside a function, which the interpreter only meets when the function runs,
  counts too. A row that names no module fails: when a module moves, move its row.
* No import cycle between the nodes of the package graph (see `node_of`), every import in a file
  counted wherever it stands: at module level, in a function, in a `try`, under
  `if TYPE_CHECKING:` (a type-only import is still a dependency; `TYPE_CHECKING_COUNTS`), and
  `importlib.import_module("a.literal")`. A failure lists every cycle and the `file:line` of
  each import on it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("image_core", "watchtower")

# Talks to the world: a web framework, AWS, a database or its driver, Redis, the job scheduler,
# an HTTP client. The deciding core (STYLE rule 2) imports none of them, even indirectly.
IO = frozenset(
    {
        "flask",
        "werkzeug",
        "boto3",
        "botocore",
        "sqlalchemy",
        "psycopg",
        "redis",
        "apscheduler",
        "urllib3",
        "requests",
    }
)

# module, or package with everything beneath it -> top-level packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    # The image service knows nothing of the tool that watches it.
    "image_core": frozenset({"watchtower"}),
    # Its deciding core: the Idempotency-Key rules; validation and thumbnails (bytes in and out).
    "image_core.idempotency": IO,
    "image_core.images": IO,
    # What every layer shares: one result shape, one exception tree, one plugin registry; the
    # alert payloads and routes.
    "watchtower.model": IO,
    "watchtower.errors": IO,
    "watchtower.registry": IO,
    "watchtower.alerting": IO,
    # The checks judge what `Sources` (ports) read; the adapters are built by the root.
    "watchtower.checks": IO,
    "watchtower.doctor.contract": IO,  # what the checks read, for the contract page and doctor
    # Runbooks: the model, the expression language, the parser, what a step reads, the state
    # machine; the worker, step execution and the engine's facade reach the store and AWS only
    # through ports and the actions' context.
    "watchtower.runbook.model": IO,
    "watchtower.runbook.expressions": IO,
    "watchtower.runbook.expression_bounds": IO,
    "watchtower.runbook.parser": IO,
    "watchtower.runbook.scope": IO,
    "watchtower.runbook.machine": IO,
    "watchtower.runbook.steps": IO,
    "watchtower.runbook.worker": IO,
    "watchtower.runbook.engine": IO,
    "watchtower.runbook.actions.base": IO,
    # Cutover: the criteria, the judge that composes them, coverage, the gate, the reports as
    # plain data and their Markdown and charts.
    "watchtower.cutover.criteria": IO,
    "watchtower.cutover.judge": IO,
    "watchtower.cutover.coverage": IO,
    "watchtower.cutover.gate": IO,
    "watchtower.cutover.config": IO,
    "watchtower.cutover.model": IO,
    "watchtower.cutover.figures": IO,
    "watchtower.cutover.canonical": IO,
    "watchtower.cutover.document": IO,
    "watchtower.cutover.markdown": IO,
    "watchtower.cutover.charts": IO,
    # How figures read and how charts draw, for every page and report.
    "watchtower.figures": IO,
    "watchtower.svg": IO,
    # The status page's rules, uptime and charts: the web edge reads the store and the clock.
    "watchtower.status": IO,
}

# A type-only import does not run, but it is a dependency all the same: a module that names
# the composition root's type in a signature needs the root, and the root needs it.
TYPE_CHECKING_COUNTS = True


# -- the modules on disk ---------------------------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    """Every first-party module, by dotted name (a package by its `__init__.py`)."""
    found = {}
    for top in FIRST_PARTY:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def beneath(name: str) -> list[str]:
    """The module itself, or the package and every module beneath it."""
    return sorted(m for m in modules() if m == name or m.startswith(name + "."))


def _top(name: str) -> str:
    return name.split(".")[0]


# -- the imports of one file -----------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    target: str  # resolved: `from pkg import mod` imports pkg.mod, `from mod import name` mod
    where: str  # file:line
    text: str  # the statement as written, on one line
    typing_only: bool = False  # under `if TYPE_CHECKING:`


def _name(node: ast.expr) -> str:
    """The last part of a name: `import_module` for `importlib.import_module`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def parse_imports(
    source: str, module: str, *, package: bool, known: Iterable[str], filename: str
) -> tuple[Import, ...]:
    """Every import in one file, wherever it stands, resolved against the `known` modules."""
    known = set(known)

    def resolve(name: str) -> str:  # a name's longest prefix that is a known module
        parts = name.split(".")
        while len(parts) > 1 and ".".join(parts) not in known:
            parts.pop()
        return ".".join(parts)

    tree = ast.parse(source, filename=filename)
    lines = source.splitlines()
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _name(node.test) == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }
    anchor = module.split(".") if package else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..y import z
                base = ".".join([*anchor[: len(anchor) - node.level + 1], *base.split(".")])
                base = base.strip(".")
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and _name(node.func) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        if not names:
            continue
        first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        text = " ".join(" ".join(lines[first - 1 : last]).split())
        found += [
            Import(resolve(name), f"{filename}:{first}", text, id(node) in typing_only)
            for name in dict.fromkeys(names)
        ]
    return tuple(dict.fromkeys(found))


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    path = modules()[module]
    return parse_imports(
        path.read_text(),
        module,
        package=path.name == "__init__.py",
        known=modules(),
        filename=str(path.relative_to(ROOT)),
    )


# -- the forbidden imports -------------------------------------------------------------------


def _probe(names: list[str]) -> str:
    """`import` statements, not `importlib.import_module`: `-X importtime` then nests each
    module under the one that imported it."""
    return "\n".join(["import json, sys", *(f"import {name}" for name in names)]) + (
        "\nprint(json.dumps(sorted(sys.modules)))"
    )


@dataclass(frozen=True)
class Loaded:
    modules: frozenset[str]  # sys.modules after the imports
    timings: str  # `-X importtime` (stderr): who imported what, or the traceback


@cache
def loaded() -> dict[str, Loaded]:
    """For each row, what a fresh interpreter loads to import the row's modules. The
    interpreters run side by side: the whole table takes about as long as its slowest row."""
    running = {
        row: subprocess.Popen(
            [sys.executable, "-X", "importtime", "-c", _probe(beneath(row))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for row in FORBIDDEN
        if beneath(row)
    }
    answers = {}
    for row, process in running.items():
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err += f"\nimporting {row} took over 120 s"
        names = json.loads(out) if process.returncode == 0 else []
        answers[row] = Loaded(frozenset(names), err)
    return answers


def chain(timings: str, wanted: str) -> str:
    """Which of our modules imported `wanted`, from `-X importtime`: a module's line follows
    its imports' lines, one level of indentation further out."""
    rows = [
        (len(name) - len(name.lstrip()), name.strip())
        for line in timings.splitlines()
        if line.startswith("import time:") and "|" in line
        for name in [line.rsplit("|", 1)[1]]
    ]
    for i, (depth, name) in enumerate(rows):
        if _top(name) == wanted:
            path = [name]
            for outer, by in rows[i + 1 :]:
                if outer < depth:
                    depth = outer
                    if _top(by) in FIRST_PARTY:
                        path.append(by)
            return " <- ".join(dict.fromkeys(path))
    return wanted


@pytest.mark.parametrize("row", sorted(FORBIDDEN))
def test_never_imports(row: str) -> None:
    assert beneath(row), f"no module {row} in {', '.join(FIRST_PARTY)}: the table names it"
    forbidden = FORBIDDEN[row]
    answer = loaded()[row]
    assert answer.modules, f"importing {row} failed:\n{answer.timings[-3000:]}"
    indirect = sorted({_top(m) for m in answer.modules} & forbidden)
    assert not indirect, f"importing {row} loads {', '.join(indirect)}:\n" + "\n".join(
        chain(answer.timings, name) for name in indirect
    )
    direct = [
        f"{imp.where}: {imp.text}"
        for name in beneath(row)
        for imp in imports_of(name)
        if _top(imp.target) in forbidden and not imp.typing_only
    ]
    assert not direct, f"{row} imports what it must not:\n" + "\n".join(direct)


def test_docs_architecture_states_the_same_table() -> None:
    """docs/architecture.md states the rule this test keeps: the same rows, the same verdicts."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("| module or package (with everything beneath it) | never imports |")[1]
    stated: dict[str, frozenset[str]] = {}
    for line in table.split("\n\n")[0].splitlines()[2:]:
        names, verdict = line.strip("|").split("|")[:2]
        never = IO if verdict.strip().startswith("I/O") else frozenset(verdict.split("`")[1::2])
        stated |= {name: never for name in names.split("`")[1::2]}
    assert stated == FORBIDDEN


# -- the package graph -----------------------------------------------------------------------

Graph = Mapping[str, Mapping[str, tuple[Import, ...]]]


def node_of(module: str) -> str:
    """The node a module belongs to.

    A module directly in `image_core/` or `watchtower/` is its own node (`watchtower.config`,
    `image_core.service`); a package directly in them is one node with everything beneath it,
    sub-packages included (`watchtower.runbook` holds `watchtower.runbook.actions.base`). The
    parts of one package may use each other; two nodes may not need each other, however
    indirectly. Sub-packages are not nodes of their own because a plugin package and its parent
    need each other by design: the engine loads the actions, which use the runbook model; the
    judge composes the criteria, which read the cutover model.
    """
    return ".".join(module.split(".")[:2])


@cache
def graph() -> Graph:
    """node -> node it imports -> the imports that make the edge."""
    edges: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for module in modules():
        for imp in imports_of(module):
            if imp.target not in modules() or (imp.typing_only and not TYPE_CHECKING_COUNTS):
                continue
            source, target = node_of(module), node_of(imp.target)
            if source != target and target not in FIRST_PARTY:  # `import watchtower` is no edge
                edges[source][target].append(imp)
    return {a: {b: tuple(found) for b, found in bs.items()} for a, bs in edges.items()}


def _shortest_path(edges: Graph, start: str, goal: str) -> list[str]:
    before = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(before[path[-1]])
            return path[::-1]
        for following in sorted(edges.get(node, {})):
            if following not in before:
                before[following] = node
                queue.append(following)
    return []


def cycles(edges: Graph) -> list[list[str]]:
    """For every edge a -> b on a cycle, the cycle the shortest way back from b to a closes: so
    every edge that takes part in a cycle is shown, each cycle once."""
    found = set()
    for a in sorted(edges):
        for b in sorted(edges[a]):
            back = _shortest_path(edges, b, a)
            if back:
                cycle = [a, *back[:-1]]
                turn = cycle.index(min(cycle))
                found.add(tuple(cycle[turn:] + cycle[:turn]))
    return [list(c) for c in sorted(found, key=lambda c: (len(c), c))]


def report(edges: Graph, found: list[list[str]]) -> str:
    """The cycles as chains of nodes, then each import that makes one of their edges, once."""
    steps = sorted({(a, b) for c in found for a, b in zip(c, [*c[1:], c[0]], strict=True)})
    lines = [f"{len(found)} import cycles between packages:"]
    lines += ["  " + " -> ".join([*c, c[0]]) for c in found]
    lines.append("made by these imports (function-local ones included):")
    for a, b in steps:
        lines.append(f"  {a} -> {b}")
        lines += [
            f"    {imp.where}: {imp.text}" + ("  [TYPE_CHECKING]" if imp.typing_only else "")
            for imp in edges[a][b]
        ]
    return "\n".join(lines)


def test_no_import_cycle_between_packages() -> None:
    found = cycles(graph())
    if found:
        pytest.fail(report(graph(), found), pytrace=False)


# -- the tests' own machinery ----------------------------------------------------------------

_SAMPLE = """
import os
from typing import TYPE_CHECKING
from . import sibling
from .. import other
from pkg.b import helper, thing

if TYPE_CHECKING:
    from pkg.c import Type


def later():
    from pkg.d import late
    return importlib.import_module("pkg.e")
"""


def test_every_kind_of_import_is_seen_and_resolved() -> None:
    known = {"pkg", "pkg.a", "pkg.a.sibling", "pkg.other", "pkg.b", "pkg.b.helper", "pkg.c"}
    known |= {"pkg.d", "pkg.e"}
    found = parse_imports(_SAMPLE, "pkg.a", package=True, known=known, filename="pkg/a.py")
    assert {(i.target, i.where, i.typing_only) for i in found} == {
        ("os", "pkg/a.py:2", False),
        ("typing", "pkg/a.py:3", False),
        ("pkg.a.sibling", "pkg/a.py:4", False),  # relative, a module: the module
        ("pkg.other", "pkg/a.py:5", False),
        ("pkg.b.helper", "pkg/a.py:6", False),  # `from pkg.b import helper`: a module
        ("pkg.b", "pkg/a.py:6", False),  # `thing` is a name in pkg.b
        ("pkg.c", "pkg/a.py:9", True),
        ("pkg.d", "pkg/a.py:13", False),  # in a function
        ("pkg.e", "pkg/a.py:14", False),  # import_module("pkg.e")
    }


def test_cycles_are_found_and_reported_with_their_lines() -> None:
    def edge(a: str, b: str) -> tuple[Import, ...]:
        return (Import(b, f"{a}.py:1", f"import {b}"),)

    edges = {
        "a": {"b": edge("a", "b")},
        "b": {"c": edge("b", "c"), "a": edge("b", "a")},
        "c": {"a": edge("c", "a")},
        "d": {"a": edge("d", "a")},  # into a cycle, not on one
    }
    assert cycles(edges) == [["a", "b"], ["a", "b", "c"]]
    text = report(edges, cycles(edges))
    assert "a -> b -> c -> a" in text and "c.py:1: import a" in text and "d.py" not in text
    assert node_of("watchtower.runbook.actions.base") == "watchtower.runbook"
    assert node_of("watchtower.config") == "watchtower.config"
    assert node_of("image_core.service") == "image_core.service"
