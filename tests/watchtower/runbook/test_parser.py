"""Runbook files: what a good one parses into, and every problem reported at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchtower.runbook.parser import Catalog, catalog, load, parse

GOOD = """\
---
id: good
title: A good runbook
summary: It parses.
triggers: [{alertname: ImageDynamoDBThrottling, severity: critical}]
params:
  table: {default: "${settings.table}", pattern: '[a-z]+'}
  count: {type: integer, default: 2, min: 1, max: 5}
lock: ${params.table}
---
# Title

Prose with a [link](other).

```step
id: confirm
check: dynamodb_throttling
with: {window_seconds: 600}
expect: "throttled_requests > 0"
on_failure: continue
retries: 2
```

More prose.

```step
id: switch
title: Switch
action: dynamodb.set_billing_mode
with: {table: "${params.table}", mode: PAY_PER_REQUEST}
when: steps.confirm.passed
approval: required
post_check:
  action: dynamodb.describe_table
  with: {table: "${params.table}"}
  expect: "billing_mode == 'PAY_PER_REQUEST'"
compensate:
  action: dynamodb.set_billing_mode
  with: {table: "${params.table}", mode: PROVISIONED, read_capacity: 5, write_capacity: 5}
```

```step
id: done
manual: Tell the team.
```
"""


@pytest.fixture(scope="module")
def known() -> Catalog:
    return catalog()


def test_a_good_runbook(known: Catalog) -> None:
    runbook, problems = parse(GOOD, path="good.md", catalog=known)
    assert problems == []
    assert runbook is not None
    assert (runbook.id, runbook.title, runbook.lock) == (
        "good",
        "A good runbook",
        "${params.table}",
    )
    assert runbook.triggers[0].matches(
        {"alertname": "ImageDynamoDBThrottling", "severity": "critical"}
    )
    assert not runbook.triggers[0].matches({"alertname": "ImageDynamoDBThrottling"})
    assert [(s.id, s.kind, s.line) for s in runbook.steps] == [
        ("confirm", "check", 15),
        ("switch", "action", 26),
        ("done", "manual", 42),
    ]
    switch = runbook.steps[1]
    assert switch.post_check is not None and switch.post_check.target == "dynamodb.describe_table"
    assert switch.compensate is not None and switch.approval == "required"
    assert runbook.steps[0].retries == 2 and runbook.steps[0].on_failure == "continue"
    assert [p.name for p in runbook.params] == ["table", "count"]


def _problems(known: Catalog, text: str, name: str = "bad.md") -> list[str]:
    runbook, problems = parse(textwrap.dedent(text), path=name, catalog=known)
    assert runbook is None
    return [str(p) for p in problems]


def _front(extra: str = "") -> str:
    param = "  table: {default: x, pattern: '[a-z]+'}\n"
    return f"---\nid: bad\ntitle: Bad\nparams:\n{param}{extra}---\n"


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("id: a\nshell: rm -rf /", "bad.md:10: step 'a': unknown step kind 'shell'"),
        ("id: a\naction: lambda.reboot", "bad.md:10: step 'a': unknown action 'lambda.reboot'"),
        ("id: a\ncheck: nope", "bad.md:10: step 'a': unknown check 'nope'"),
        (
            "id: a\ncheck: dual_write\nexpect: 'flag =='",
            "bad.md:11: step 'a': expect: 'flag ==' is not a valid",
        ),
        ("id: a\ncheck: dual_write\nwhen: __import__('os')", "only these functions may be called"),
        (
            "id: a\ncheck: dual_write\nwhen: params.nope",
            "bad.md:11: step 'a': when: missing parameter 'nope'",
        ),
        ("id: a\ncheck: dual_write\nwhen: steps.b.passed", "when: no earlier step 'b'"),
        (
            "id: a\ncheck: dual_write\nwhen: settings.webhook_token",
            "settings has no 'webhook_token'",
        ),
        ("id: a\ncheck: dual_write\nwith: {window: 5}", "check dual_write has no 'window'"),
        (
            "id: a\ncheck: dual_write\non_failure: nowhere",
            "bad.md:8: on_failure: no step 'nowhere'",
        ),
        ("id: a\ncheck: dual_write\nbogus: 1", "bad.md:11: step 'a': unknown field 'bogus'"),
        ("id: a\ncheck: dual_write\ntimeout: 0", "timeout must be 1 to 3600 seconds"),
        ("check: dual_write", "step id: must be"),
        ("id: a\ncheck: dual_write\naction: s3.head_bucket", "one kind per step"),
        ("id: a\n  bad: [yaml", "bad.md:"),
        ("id: a\napproval: required", "an approval step's approval: is the question"),
        ("id: a\nquery: {sql: 'DELETE FROM gallery_images'}", "sql: must be one SELECT"),
        ("id: a\nquery: {sql: 'SELECT 1; DROP TABLE x'}", "no ';'"),
        ("id: a\nquery: {sql: 'SELECT ${params.table}'}", "no ';' and no ${...}"),
        ("id: a\nquery: {sql: 'SELECT %(user)s'}", "%(user)s has no value in with:"),
        ("id: a\nquery: {sql: 'SELECT * FROM {images}'}", "the one {name} is {legacy_table}"),
        ("id: a\nquery: {mongo: 'x'}", "one of promql, cloudwatch, logs, sql"),
        (
            "id: a\nquery: {cloudwatch: {namespace: N, metric: M, window: 90}}",
            "window must be a multiple of 60",
        ),
        ("id: a\naction: s3.head_bucket", "s3.head_bucket needs 'bucket' in with:"),
        (
            "id: a\naction: s3.head_bucket\nwith: {bucket: b, x: 1}",
            "s3.head_bucket has no input 'x'",
        ),
        (
            "id: a\naction: s3.head_bucket\nwith: {bucket: b}\nretries: 2",
            "retries: ",  # allowed on a read: no problem expected
        ),
    ],
)
def test_step_problems_name_file_and_line(known: Catalog, block: str, problem: str) -> None:
    text = _front() + f"# x\n```step\n{block}\n```\n"
    runbook, found = parse(text, path="bad.md", catalog=known)
    shown = [str(p) for p in found]
    if problem == "retries: ":
        assert found == [] or all("retries" not in s for s in shown), shown
        return
    assert runbook is None
    assert any(problem in s for s in shown), shown


def test_mutating_steps_have_more_rules(known: Catalog) -> None:
    shown = _problems(
        known,
        _front()
        + textwrap.dedent("""\
        ```step
        id: flip
        action: lambda.set_environment_variable
        with: {function: f, name: X, value: "1"}
        retries: 2
        dry_run: run
        compensate:
          action: lambda.set_environment_variable
          with: {function: f, name: X, value: "0"}
        ```

        ```step
        id: verify
        action: lambda.set_reserved_concurrency
        with: {function: f, count: 2}
        post_check:
          action: lambda.set_reserved_concurrency
          with: {function: f, count: 3}
          expect: "true"
        ```
        """),
    )
    text = "\n".join(shown)
    assert "bad.md:11: step 'flip': only reads may be retried, not a action" in text
    assert "bad.md:12: step 'flip': dry_run: run is only for reads" in text
    assert "compensate: runs when the post_check fails; add a post_check" in text
    assert "a post-check must only read" in text


def test_a_runbook_that_changes_things_must_say_what_it_locks(known: Catalog) -> None:
    shown = _problems(
        known,
        _front()
        + "```step\nid: flip\naction: lambda.set_reserved_concurrency\n"
        + "with: {function: f, count: 2}\n```\n",
    )
    assert shown == [
        "bad.md:2: steps flip change things: declare what a run locks, e.g. lock: ${params.table}"
    ]


def test_duplicate_ids_and_backward_jumps(known: Catalog) -> None:
    shown = _problems(
        known,
        _front()
        + "```step\nid: a\ncheck: dual_write\n```\n"
        + "```step\nid: b\ncheck: dual_write\non_failure: a\n```\n"
        + "```step\nid: a\ncheck: dual_write\n```\n",
    )
    assert "bad.md:16: duplicate step id 'a' (first on line 7)" in shown
    assert "bad.md:11: on_failure: 'a' must be a later step" in shown


def test_front_matter_problems(known: Catalog) -> None:
    assert _problems(known, "# no front matter\n") == [
        "bad.md:1: no front matter: the file must start with a line '---'"
    ]
    shown = _problems(
        known,
        """\
        ---
        id: not-bad
        title: ""
        colour: red
        triggers: ImageDown
        params:
          user: {type: string}
          n: {type: float}
          m: {type: integer, default: many}
          p: {pattern: '(', default: x}
        ---
        ```step
        id: a
        check: dual_write
        when: params.user == ''
        ```
        """,
    )
    assert "bad.md:2: id 'not-bad' does not match the file name" in shown
    assert "bad.md:3: title: is missing" in shown
    assert "bad.md:4: unknown front matter key 'colour'" in shown
    assert any(s.startswith("bad.md:5: triggers: must be a list") for s in shown)
    assert "bad.md:7: params.user: a string parameter needs a pattern: or choices:" in shown
    assert any(s.startswith("bad.md:8: params.n: type 'float' is not one of") for s in shown)
    assert "bad.md:9: params.m: default: 'many' is not a whole number" in shown
    assert any(s.startswith("bad.md:10: params.p: pattern does not compile") for s in shown)
    assert not any("missing parameter 'user'" in s for s in shown)  # reported once, above


def test_a_yaml_error_points_at_its_line(known: Catalog) -> None:
    shown = _problems(known, _front() + "\n\n```step\nid: a\ncheck: [dual_write\n```\n")
    # The block starts on line 9; YAML notices the unclosed list at its end (line 12).
    assert len(shown) == 1 and "YAML: expected ',' or ']'" in shown[0], shown
    assert int(shown[0].split(":")[1]) in (11, 12), shown


def test_steps_nested_in_lists_are_refused(known: Catalog) -> None:
    shown = _problems(
        known, _front() + "- item\n\n  ```step\n  id: a\n  check: dual_write\n  ```\n"
    )
    assert "bad.md:9: a step block must not be inside a list or a quote" in shown


def test_load_reports_duplicate_runbook_ids_across_files(known: Catalog, tmp_path: Path) -> None:
    text = "---\nid: same\ntitle: T\n---\n```step\nid: a\ncheck: dual_write\n```\n"
    (tmp_path / "same.md").write_text(text)
    other = tmp_path / "sub"
    other.mkdir()
    (other / "same.md").write_text(text)
    found, problems = load([tmp_path, other / "same.md"], known)
    assert list(found) == ["same"]
    assert len(problems) == 1 and "runbook id 'same' is also used by" in problems[0].message


def test_the_repository_runbooks_are_valid(known: Catalog) -> None:
    root = Path(__file__).resolve().parents[3] / "runbooks"
    found, problems = load([root], known)
    assert [str(p) for p in problems] == []
    assert sorted(found) == [
        "cloudfront-cache-invalidation",
        "disable-dual-write",
        "dynamodb-throttling",
        "find-legacy-writer",
        "image-upload-failures",
        "lambda-cold-starts",
        "rollback-dual-write",
        "watchtower-absent",
        "watchtower-check-critical",
        "watchtower-check-stale",
        "watchtower-check-unknown",
        "watchtower-probe-stale",
    ]
