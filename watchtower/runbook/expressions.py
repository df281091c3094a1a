"""The runbooks' expression language: a small, sandboxed subset of Python expressions. Pure.

`when:` and `expect:` are expressions; `with:` values may embed them as `${...}`. The text is
parsed with `ast` and accepted only if every node is on a whitelist: literals, names, attribute
and subscript access into plain data, comparisons, boolean logic, arithmetic, `a if c else b`,
and calls of a few named pure functions. It is then evaluated by walking the tree over plain data
(dict, list, str, int, float, bool, None). Nothing is ever passed to `eval`, no attribute of a
Python object is ever read (`a.b` looks up the key "b" of the dict `a`), and names starting with
an underscore are refused.

Every bound is checked before the work it bounds, so no single step runs long or allocates much
before it is refused (`expression_bounds.py` holds the limits and the checks): text and lists an
expression builds (by `*`, `+`, a list literal) are sized from their operands first, counting
every element at every depth; an integer may not grow past MAX_INT_BITS (a product's size is
estimated from its factors first); `str()` takes a single value, `round()` at most
MAX_ROUND_DIGITS digits, `int()` short text; and each evaluation has MAX_SECONDS of CPU time,
checked at every node. `**`, `pow` and `<<` are not in the language at all.

Why not a ready-made evaluator with cost limits (a CEL implementation such as `cel-python` or
`common-expression-language`): CEL is another language (`&&`, `!`, `size()`, `c ? a : b`), so
every runbook's `when:`/`expect:` and the path validation would be rewritten, while the costly
inputs found (issue 12) came from a handful of native operations this module bounds exactly.
Keeping the hand-written evaluator, with its whitelist of node kinds, is the smaller, surer change.
"""

from __future__ import annotations

import ast
import operator
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from watchtower.runbook import expression_bounds as bounds
from watchtower.runbook.errors import ExpressionError
from watchtower.runbook.expression_bounds import (
    MAX_INT_BITS,
    MAX_ROUND_DIGITS,
    MAX_SECONDS,
    MAX_SIZE,
    LimitExceeded,
)

__all__ = [
    "FUNCTIONS",
    "MAX_INT_BITS",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_ROUND_DIGITS",
    "MAX_SECONDS",
    "MAX_SIZE",
    "Expression",
    "compile_expression",
    "evaluate",
    "expressions_in",
    "render",
    "template_expressions",
    "truthy",
]

MAX_LENGTH = 500  # characters of one expression
MAX_NODES = 200  # syntax-tree nodes of one expression

_NODES: frozenset[type[ast.AST]] = frozenset(
    {
        ast.Expression,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.Add,
        ast.Sub,
        ast.Mult,
        ast.Div,
        ast.FloorDiv,
        ast.Mod,
        ast.Compare,
        ast.Eq,
        ast.NotEq,
        ast.Lt,
        ast.LtE,
        ast.Gt,
        ast.GtE,
        ast.In,
        ast.NotIn,
        ast.Is,
        ast.IsNot,
        ast.IfExp,
        ast.Name,
        ast.Load,
        ast.Attribute,
        ast.Subscript,
        ast.Constant,
        ast.List,
        ast.Tuple,
        ast.Call,
    }
)

_WHY_NOT: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignment (:=)",
    ast.Pow: "** (powers)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.JoinedStr: "f-strings",
    ast.Starred: "* unpacking",
    ast.Slice: "slices",
    ast.Dict: "dict literals",
    ast.Set: "set literals",
}


def _get(container: Any, key: Any, default: Any = None) -> Any:
    if isinstance(container, dict):
        return container.get(key, default)
    raise ExpressionError(f"get() needs a mapping, not {_type(container)}")


def _text(fn: Callable[[str], str]) -> Callable[[Any], str]:
    def call(value: Any) -> str:
        if not isinstance(value, str):
            raise ExpressionError(f"{fn.__name__}() needs text, not {_type(value)}")
        return fn(value)

    return call


def _round(number: Any, digits: Any = None) -> Any:
    if not _number(number):
        raise ExpressionError(f"round() needs a number, not {_type(number)}")
    if digits is None:
        return round(number)
    if not _integer(digits):
        raise ExpressionError(f"round()'s digits must be a whole number, not {_type(digits)}")
    bounds.check_round_digits(digits)  # round(1, -10**7) would compute 10**10**7 first
    return round(number, digits)


def _int(value: Any, *base: Any) -> int:
    if isinstance(value, str):
        bounds.check_int_text(value)
    return int(value, *base)


def _str(value: Any = "") -> str:
    # A single value only: the text of a nested list is where a small expression grows big.
    if not isinstance(value, str | int | float | bool | type(None)):
        raise ExpressionError(
            f"str() takes a single value (text, a number, true/false or None), not {_type(value)}"
        )
    return str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "int": _int,
    "float": float,
    "str": _str,
    "bool": bool,
    "lower": _text(str.lower),
    "upper": _text(str.upper),
    "get": _get,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: operator.contains(b, a),
    ast.NotIn: lambda a, b: not operator.contains(b, a),
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_PLAIN = (str, int, float, bool, type(None), list, dict, tuple)


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression

    def paths(self) -> list[tuple[str, ...]]:
        """Every `a.b["c"]` chain of constant keys read from a name, for validation."""
        return list(_paths(self.tree.body))

    def names(self) -> set[str]:
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)} - set(FUNCTIONS)


def compile_expression(source: str) -> Expression:
    """Parse and check one expression; raises ExpressionError saying what is not allowed."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be text, not {_type(source)}")
    text = source.strip()
    if not text:
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        message = getattr(exc, "msg", None) or type(exc).__name__
        raise ExpressionError(f"{text!r} is not a valid expression: {message}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"{text!r} is too complex (over {MAX_NODES} parts)")
    for node in nodes:
        _allow(node, text)
    return Expression(text, tree)


def _allow(node: ast.AST, text: str) -> None:
    kind = type(node)
    if kind not in _NODES:
        what = _WHY_NOT.get(kind, kind.__name__)
        raise ExpressionError(f"{text!r}: {what} is not allowed in runbook expressions")
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        raise ExpressionError(f"{text!r}: names starting with '_' are not allowed")
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        raise ExpressionError(f"{text!r}: names starting with '_' are not allowed")
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise ExpressionError(f"{text!r}: {type(node.value).__name__} literals are not allowed")
        if isinstance(node.value, str) and node.value.startswith("__"):
            raise ExpressionError(f"{text!r}: keys starting with '__' are not allowed")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"{text!r}: only these functions may be called: {allowed}")
        if node.keywords:
            raise ExpressionError(f"{text!r}: keyword arguments are not allowed")
    if isinstance(node, ast.Name) and node.id in FUNCTIONS:
        return  # checked at the call


def evaluate(
    expression: Expression | str,
    namespace: Mapping[str, Any],
    *,
    cpu_clock: Callable[[], float] = time.thread_time,
) -> Any:
    """The expression's value over plain data; raises ExpressionError naming the problem (and
    the limit, when one would be exceeded). `cpu_clock` measures its time limit."""
    expr = expression if isinstance(expression, Expression) else compile_expression(expression)
    try:
        return _Evaluator(namespace, expr.source, cpu_clock).visit(expr.tree.body)
    except ExpressionError:
        raise
    except LimitExceeded as exc:
        raise ExpressionError(f"{expr.source!r}: {exc}") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, KeyError, IndexError) as exc:
        raise ExpressionError(f"{expr.source!r}: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise ExpressionError(f"{expr.source!r}: too deeply nested") from None


def truthy(expression: Expression | str, namespace: Mapping[str, Any]) -> bool:
    return bool(evaluate(expression, namespace))


class _Evaluator:
    def __init__(
        self, namespace: Mapping[str, Any], source: str, cpu_clock: Callable[[], float]
    ) -> None:
        self.namespace = namespace
        self.source = source
        self.clock = cpu_clock
        self.deadline = cpu_clock() + MAX_SECONDS

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"{self.source!r}: {message}")

    def visit(self, node: ast.AST) -> Any:
        bounds.check_time(self.clock, self.deadline)
        method: Callable[[Any], Any] = getattr(self, f"_{type(node).__name__}")
        return _bounded(method(node), self)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in ("true", "false", "null"):  # YAML habits
            return {"true": True, "false": False, "null": None}[node.id]
        if node.id not in self.namespace:
            known = ", ".join(sorted(self.namespace)) or "none"
            raise self.fail(f"unknown name {node.id!r} (known: {known})")
        return self.namespace[node.id]

    def _Attribute(self, node: ast.Attribute) -> Any:
        return self._lookup(self.visit(node.value), node.attr, _describe(node.value))

    def _Subscript(self, node: ast.Subscript) -> Any:
        container = self.visit(node.value)
        key = self.visit(node.slice)
        if isinstance(container, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise self.fail(f"{_describe(node.value)} is a list; index it with a number")
            if not -len(container) <= key < len(container):
                raise self.fail(f"{_describe(node.value)} has no item {key}")
            return container[key]
        return self._lookup(container, key, _describe(node.value))

    def _lookup(self, container: Any, key: Any, where: str) -> Any:
        if not isinstance(container, dict):
            raise self.fail(f"{where} is {_type(container)}, not a mapping: it has no {key!r}")
        if key not in container:
            known = ", ".join(sorted(map(str, container))) or "nothing"
            raise self.fail(f"{where} has no {key!r} (it has: {known})")
        return container[key]

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.visit(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not _number(value):
            raise self.fail(f"a sign needs a number, not {_type(value)}")
        return -value if isinstance(node.op, ast.USub) else +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        op = type(node.op)
        if _number(left) and _number(right):
            if op is ast.Mult and _integer(left) and _integer(right):
                bounds.check_product(left, right)
            return _BINARY[op](left, right)
        if op is ast.Add and type(left) is type(right) and isinstance(left, str | list):
            bounds.check_concat(left, right)
            return left + right
        if op is ast.Mult and (
            (isinstance(left, str | list) and _integer(right))
            or (isinstance(right, str | list) and _integer(left))
        ):
            seq, times = (left, right) if isinstance(left, str | list) else (right, left)
            bounds.check_repeat(seq, times)
            return seq * times
        raise self.fail(
            f"cannot apply {type(node.op).__name__} to {_type(left)} and {_type(right)}"
        )

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            if isinstance(op, ast.In | ast.NotIn) and not isinstance(right, str | list | dict):
                raise self.fail(f"'in' needs text, a list or a mapping, not {_type(right)}")
            if isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE) and (
                left is None or right is None
            ):
                raise self.fail("a value compared is missing (None): no data to judge")
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def _List(self, node: ast.List | ast.Tuple) -> Any:
        items = [self.visit(e) for e in node.elts]  # at most MAX_NODES references: cheap
        bounds.check_size(bounds.size(items), "this list")
        return items

    _Tuple = _List

    def _Call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        args = [self.visit(a) for a in node.args]
        for arg in args:
            if not isinstance(arg, _PLAIN):
                raise self.fail(f"{node.func.id}() takes plain data only")
        return FUNCTIONS[node.func.id](*args)


def _bounded(value: Any, evaluator: _Evaluator) -> Any:
    if isinstance(value, str | list) and len(value) > MAX_SIZE:
        raise evaluator.fail(f"a value of length {len(value)} exceeds the size limit ({MAX_SIZE})")
    if _integer(value):
        bounds.check_int(value)
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type(value: Any) -> str:
    return {
        type(None): "None",
        dict: "a mapping",
        list: "a list",
        tuple: "a list",
        str: "text",
        bool: "true/false",
    }.get(type(value), "a number" if _number(value) else type(value).__name__)


def _describe(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of an accepted tree does not fail
        return "the value"


def _paths(node: ast.AST) -> Iterator[tuple[str, ...]]:
    chain = _chain(node)
    if chain is not None:
        yield chain
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            continue
        yield from _paths(child)


def _chain(node: ast.AST) -> tuple[str, ...] | None:
    """("steps", "confirm", "figures") for steps.confirm.figures, when every key is constant."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        head = _chain(node.value)
        return None if head is None else (*head, node.attr)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        head = _chain(node.value)
        return None if head is None else (*head, node.slice.value)
    if isinstance(node, ast.Subscript):
        head = _chain(node.value)
        if head is not None:
            return head  # a computed key: validate the prefix (the key is data)
    return None


# -- templates: `${expression}` inside text -------------------------------------------------------

_TEMPLATE = re.compile(r"\$\{([^{}]*)\}")


def template_expressions(text: str) -> list[Expression]:
    """The expressions of every `${...}` in `text`; raises ExpressionError on a bad one."""
    found = [compile_expression(m.group(1)) for m in _TEMPLATE.finditer(text)]
    rest = _TEMPLATE.sub("", text)
    if "${" in rest:
        raise ExpressionError(f"{text!r}: an unclosed or nested ${{...}}")
    return found


def render(
    value: Any, namespace: Mapping[str, Any], *, text_of: Callable[[Any], str] | None = None
) -> Any:
    """`value` with every `${...}` replaced, in nested lists and mappings.

    A string that is exactly one `${expr}` takes the expression's value as it is (a number stays
    a number, a list a list); `${...}` inside longer text is replaced by `text_of(value)`, which
    may refuse a value by raising ExpressionError (PromQL does).
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole is not None and text_of is None:
            return evaluate(whole.group(1), namespace)
        template_expressions(value)  # refuses a malformed template before anything is evaluated
        show = text_of or _as_text
        return _TEMPLATE.sub(lambda m: show(evaluate(m.group(1), namespace)), value)
    if isinstance(value, list):
        return [render(v, namespace, text_of=text_of) for v in value]
    if isinstance(value, dict):
        return {k: render(v, namespace, text_of=text_of) for k, v in value.items()}
    return value


def expressions_in(value: Any) -> list[Expression]:
    """Every `${...}` expression in nested data (for validation)."""
    if isinstance(value, str):
        return template_expressions(value)
    if isinstance(value, list):
        return [e for v in value for e in expressions_in(v)]
    if isinstance(value, dict):
        return [e for v in value.values() for e in expressions_in(v)]
    return []


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple | dict) and bounds.size(value) > MAX_SIZE:
        raise ExpressionError(
            f"a value put into text exceeds the size limit ({MAX_SIZE} characters or items)"
        )
    return str(value)
