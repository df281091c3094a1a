"""Costly expressions through the web: a run or dry run started from the page whose step or lock
expression (or a parameter it reads) would build something huge fails with the limit named, at
once, instead of holding a worker for seconds and hundreds of megabytes (issue 12, finding 8)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from tests.watchtower.runbook.conftest import Aws, write_runbook
from tests.watchtower.runbook.test_web import USERS, csrf, login
from watchtower.runbook.model import ExecutionStatus
from watchtower.runtime import Watchtower
from watchtower.web import create_app

RUNBOOK = """
---
id: {id}
title: A costly expression
params:
  times: {{type: integer, default: "1"}}
  digits: {{type: integer, default: "0"}}
{lock}
---
```step
id: costly
{step}
```
"""


def when(expression: str) -> str:
    return f'when: "{expression}"\nmanual: Tell the team.'


# (the step's lines, form parameters, the limit the failed step names)
ATTACKS = {
    "nested-text": (when("len(str([[0] * 10000] * 10000)) > 0"), {}, "size limit"),
    "text-of-list": (when("len(str(params.times * [[0] * 100])) > 0"), {"times": "100"}, "str()"),
    "nested-list": (when("len([[0] * 10000] * 10000) > 0"), {}, "size limit"),
    "round": (when("round(1, -10000000) == 0"), {}, "round() limit"),
    "param-times": (when("len(['x'] * params.times) > 0"), {"times": "100000000"}, "size limit"),
    "param-digits": (when("round(1.5, params.digits) > 0"), {"digits": "-10000000"}, "round()"),
    "manual-text": (
        "manual: Rows ${len(['x'] * params.times)}",
        {"times": "100000000"},
        "size limit",
    ),
}


@pytest.fixture
def watchtower(aws: Aws, tmp_path: Path, make_watchtower: Callable[..., Watchtower]) -> Watchtower:
    books = tmp_path / "books"
    for name, (step, _, _) in ATTACKS.items():
        write_runbook(books, name, RUNBOOK.format(id=name, step=step, lock=""))
    lock = 'lock: "${len([[0] * 10000] * 10000)}"'
    step = when("params.times > 0")
    write_runbook(books, "locked", RUNBOOK.format(id="locked", step=step, lock=lock))
    return make_watchtower(
        clock=time.time,
        aws_endpoint_url=aws.url,
        users=USERS,
        anonymous_role="viewer",
        secret_key="test-key",
        runbooks_dir=str(books),
    )


@pytest.fixture
def app(watchtower: Watchtower) -> Flask:
    return create_app(watchtower)


@pytest.mark.parametrize("dry_run", ["1", ""])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_costly_step_expression_fails_its_step_naming_the_limit(
    app: Flask, watchtower: Watchtower, name: str, dry_run: str
) -> None:
    _, params, limit = ATTACKS[name]
    olive = login(app, "olive", "olive-pw")
    form = {"csrf_token": csrf(olive), "dry_run": dry_run}
    form.update({f"param.{k}": v for k, v in params.items()})
    answer = olive.post(f"/runbooks/{name}/executions", data=form)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    run_id = str(answer.headers["Location"]).rsplit("/", 1)[1]

    tracemalloc.start()
    try:
        watchtower.runbooks.run_pending()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # the attacks took ~300 MB; a refused one takes what a step takes

    run = watchtower.runbooks.get(run_id)
    assert run.status is ExecutionStatus.FAILED
    step = run.steps[0]
    assert step.status.value == "failed"
    assert limit in step.error
    page = olive.get(f"/executions/{run_id}").get_data(as_text=True)
    assert limit in page


def test_a_costly_lock_expression_is_refused_at_the_start_with_400(
    app: Flask, watchtower: Watchtower
) -> None:
    olive = login(app, "olive", "olive-pw")
    answer = olive.post("/runbooks/locked/executions", data={"csrf_token": csrf(olive)})
    assert answer.status_code == 400
    assert "size limit" in answer.get_data(as_text=True)
    assert watchtower.runbooks.list(10) == []
