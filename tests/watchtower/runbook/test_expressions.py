"""The expression sandbox: what it evaluates, and the hostile input it refuses."""

from __future__ import annotations

import pytest

from watchtower.config import Settings
from watchtower.runbook.errors import ExpressionError
from watchtower.runbook.expressions import (
    MAX_LENGTH,
    compile_expression,
    evaluate,
    render,
    template_expressions,
)

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
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("'a' * 100000000", {})
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("['a'] * 20000", {})
    with pytest.raises(ExpressionError, match="ValueError"):
        evaluate("int('9' * 5000)", {})  # Python refuses to parse ints that long
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
