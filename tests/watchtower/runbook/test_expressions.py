"""The expression sandbox: what it evaluates, and the hostile input it refuses."""

from __future__ import annotations

import itertools
import tracemalloc
from typing import Any

import pytest

from watchtower.config import Settings
from watchtower.runbook.errors import ExpressionError
from watchtower.runbook.expression_bounds import size
from watchtower.runbook.expressions import (
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_SECONDS,
    MAX_SIZE,
    compile_expression,
    evaluate,
    render,
    template_expressions,
)
from watchtower.runbook.scope import judge

SCOPE = {
    "params": {"table": "images", "count": 3, "users": ["a", "b"]},
    "steps": {
        "confirm": {"passed": True, "figures": {"throttled": 12.0, "ratio": None}},
        "cold-starts": {"passed": False},
    },
    "settings": {"table": "images"},
    "status": "critical",
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7),
        ("params.count > 2 and steps.confirm.passed", True),
        ("params.table == settings.table", True),
        ('steps["cold-starts"].passed', False),
        ("steps.confirm.figures.throttled / 4", 3.0),
        ("steps.confirm.figures.ratio is None", True),
        ("'b' in params.users", True),
        ("status in ['warning', 'critical']", True),
        ("'yes' if params.count >= 3 else 'no'", "yes"),
        ("not steps.confirm.passed or params.count == 3", True),
        ("len(params.users) + max(1, 5)", 7),
        ("lower('READY') == 'ready'", True),
        ("get(steps.confirm.figures, 'missing', 0)", 0),
        ("params.users[0]", "a"),
        ("true and not false and null is None", True),
        ("1 < params.count <= 3", True),
        ("'a' * 3", "aaa"),
    ],
)
def test_it_evaluates_over_plain_data(text: str, value: object) -> None:
    assert evaluate(text, SCOPE) == value


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("params.nope", "params has no 'nope'"),
        ("nope > 1", "unknown name 'nope'"),
        ("steps.confirm.figures.ratio > 0.5", "missing (None)"),
        ("params.table + 1", "cannot apply Add"),
        ("1 / 0", "ZeroDivisionError"),
        ("params.users[5]", "has no item 5"),
        ("params.table.upper", "not a mapping"),
        ("'%s' % params.table", "cannot apply Mod"),
    ],
)
def test_errors_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(ExpressionError, match=says.replace("(", r"\(").replace(")", r"\)")):
        evaluate(text, SCOPE)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("__import__('os').system('id')", "only these functions"),
        (
            "().__class__.__bases__[0].__subclasses__()",
            "only these functions|names starting with '_'",
        ),
        ("().__class__", "names starting with '_'"),
        ("params.__class__", "names starting with '_'"),
        ("params['__class__']", "starting with '__'"),
        ("_secret", "names starting with '_'"),
        ("lambda: 1", "lambda is not allowed"),
        ("[x for x in params.users]", "comprehensions"),
        ("{x for x in params.users}", "comprehensions"),
        ("{k: 1 for k in params.users}", "comprehensions"),
        ("(x for x in params.users)", "comprehensions"),
        ("(y := 1)", "assignment"),
        ("2 ** 9999999", r"\*\* \(powers\)"),
        ("pow(2, 9999999)", "only these functions"),
        ("1 << 9999999", "LShift is not allowed"),
        ("open('/etc/passwd')", "only these functions"),
        ("eval('1')", "only these functions"),
        ("getattr(params, 'table')", "only these functions"),
        ("params.table.upper()", "only these functions"),
        ("str.join(',', params.users)", "only these functions"),
        ("len(params.users, key=1)", "keyword arguments"),
        ("f'{params}'", "f-strings"),
        ("params.users[0:1]", "slices"),
        ("{'a': 1}", "dict literals"),
        ("b'bytes'", "bytes literals"),
        ("1; 2", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("x = 1", "not a valid expression"),
        ("(" * 300 + ")" * 300, "not a valid expression|longer than"),
        ("-" * 300 + "1", "too complex"),
        ("1" + "+1" * 250, "longer than|too complex"),
    ],
)
def test_hostile_input_is_refused_before_it_runs(text: str, says: str) -> None:
    with pytest.raises(ExpressionError, match=says):
        compile_expression(text)


def test_no_python_object_is_ever_reached_through_attributes() -> None:
    # Settings is an object, not a mapping: its attributes are not readable.
    scope = {"settings": Settings(webhook_token="s3cret")}
    with pytest.raises(ExpressionError, match="not a mapping"):
        evaluate("settings.webhook_token", scope)


def test_sizes_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="size limit"):
        evaluate("'a' * 100000000", {})
    with pytest.raises(ExpressionError, match="size limit"):
        evaluate("['a'] * 20000", {})
    with pytest.raises(ExpressionError, match=r"int\(\) limit"):
        evaluate("int('9' * 5000)", {})
    with pytest.raises(ExpressionError, match=f"longer than {MAX_LENGTH}"):
        compile_expression("1" * (MAX_LENGTH + 1))


def test_templates_keep_types_when_whole_and_become_text_inside_text() -> None:
    assert render("${params.count}", SCOPE) == 3
    assert render("${params.users}", SCOPE) == ["a", "b"]
    assert render("/users/${params.users[0]}/*", SCOPE) == "/users/a/*"
    assert render({"paths": ["/${params.table}/*", "/x"], "n": 1}, SCOPE) == {
        "paths": ["/images/*", "/x"],
        "n": 1,
    }
    assert render("${steps.confirm.passed}-${steps.confirm.figures.ratio}", SCOPE) == "true-"
    with pytest.raises(ExpressionError, match="unclosed"):
        template_expressions("${params.count")
    with pytest.raises(ExpressionError, match="only these functions"):
        render("${__import__('os')}", SCOPE)


# -- bounded before the work: finding 8 of issue 12 -----------------------------------------------

BIG = {
    "params": {
        "n": 100_000_000,
        "digits": -10_000_000,
        "rows": [[0] * 1000] * 9,  # 9 items at the top, 9,000 inside
        "text": "x" * 6000,
        "huge": 2**5000,
    }
}

SIZE = "size limit"
ATTACKS = [
    ("len(str([[0] * 10000] * 10000))", SIZE),  # the finding: 8 s and ~300 MB before
    ("[[0] * 10000] * 10000", SIZE),
    ("10000 * [[0] * 10000]", SIZE),
    ("'a' * 100000000", SIZE),
    ("100000000 * 'a'", SIZE),
    ("['a'] * 20000", SIZE),
    ("['a' * 5000] * 3", SIZE),  # text inside a list counts its characters
    ("['x'] * params.n", SIZE),
    ("params.rows * 2", SIZE),  # 18 items at the top, 18,000 inside
    ("params.rows + params.rows", SIZE),
    ("params.text + params.text", SIZE),
    ("[[0] * 5000, [0] * 5000, [0]]", SIZE),
    ("len([params.rows, params.rows])", SIZE),
    ("'rows: ' + str(params.rows)", "str\\(\\) takes a single value"),
    ("len(str([[0] * 100] * 100))", "str\\(\\) takes a single value"),
    ("round(1, -10000000)", r"round\(\) limit"),  # the finding: 7 s before
    ("round(1.5, params.digits)", r"round\(\) limit"),
    ("round(1, 10000000)", r"round\(\) limit"),
    ("int('9' * 5000)", r"int\(\) limit"),
    ("int(1e308) * int(1e308)", "integer limit"),
    ("int(1e308) * 4", "integer limit"),
    ("params.huge", "integer limit"),
    ("int('9' * 300) * int('9' * 300) * int('9' * 300) * int('9' * 300)", "integer limit"),
]


@pytest.mark.parametrize(("text", "says"), ATTACKS)
def test_costly_expressions_are_refused_before_the_work(text: str, says: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ExpressionError, match=says):
            evaluate(text, BIG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"{text}: {peak} bytes allocated before the refusal"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("len([[0] * 5000] * 2)", 2),
        ("len('ab' * 5000)", MAX_SIZE),
        ("len(['a'] * 10000)", MAX_SIZE),
        ("len([0] * 5000 + [1] * 5000)", MAX_SIZE),
        ("len(params.rows)", 9),
        ("round(2.567, 2)", 2.57),
        ("round(1234, -2)", 1200),
        ("round(2.5)", 2),
        ("int('42') + int(2.9)", 44),
        ("str(12) + str(true) + str(None) + str(1.5)", "12TrueNone1.5"),
        ("int(1e308) > 0", True),
        ("int(1e308) * 1 > 0", True),
        ("99999999999 * 99999999999", 9999999999800000000001),
        ("float(params.text[0] == 'x')", 1.0),
    ],
)
def test_what_fits_the_limits_still_evaluates(text: str, value: Any) -> None:
    assert evaluate(text, BIG) == value


def test_limits_are_named() -> None:
    with pytest.raises(ExpressionError, match=f"size limit \\({MAX_SIZE} characters or items"):
        evaluate("['a'] * 20000", {})
    with pytest.raises(ExpressionError, match=f"integer limit \\({MAX_INT_BITS} bits\\)"):
        evaluate("int(1e308) * int(1e308)", {})
    with pytest.raises(ExpressionError, match=r"round\(\) limit \(-20 to 20\)"):
        evaluate("round(1, -21)", {})


def test_each_evaluation_has_a_time_limit() -> None:
    # A CPU clock that moves a quarter of the limit at every reading: the fifth node is too late.
    readings = itertools.count(step=MAX_SECONDS / 4)
    with pytest.raises(ExpressionError, match=r"time limit \(100 ms of CPU time\)"):
        evaluate("1 + 2 + 3 + 4 + 5 + 6", {}, cpu_clock=lambda: next(readings))
    still = itertools.repeat(0.0)
    assert evaluate("1 + 2 + 3 + 4 + 5 + 6", {}, cpu_clock=lambda: next(still)) == 21


def test_text_of_a_large_value_is_refused_before_it_is_made() -> None:
    scope = {"params": {"rows": [[0] * 1000] * 11}}
    with pytest.raises(ExpressionError, match=SIZE):
        render("rows: ${params.rows}", scope)
    assert render("${params.rows}", scope) == scope["params"]["rows"]  # whole: the value itself


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("", 0),
        ("abc", 3),
        ([], 0),
        ([[]], 1),
        ([""], 1),
        ([[0] * 100] * 100, 10_000),
        ({"a": [1, 2], "bb": {}}, 6),
        (2**200, 4),
        (None, 1),
    ],
)
def test_size_counts_every_element_at_every_depth(value: Any, count: int) -> None:
    assert size(value) == count


def test_size_stops_counting_past_the_limit() -> None:
    assert MAX_SIZE < size([[0] * 10_000] * 10_000) <= 3 * MAX_SIZE
    rows = {"rows": {f"k{i}": i for i in range(1_000_000)}}  # data a step read, not built
    tracemalloc.start()
    try:
        assert size(rows) > MAX_SIZE
        with pytest.raises(ExpressionError, match=SIZE):
            evaluate("[params.rows]", {"params": rows})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_costly_expect_fails_the_expectation_naming_the_limit() -> None:
    held, why = judge("len(str([[0] * 10000] * 10000)) > 0", SCOPE, {})
    assert not held and why.startswith("expect: ") and "size limit" in why
