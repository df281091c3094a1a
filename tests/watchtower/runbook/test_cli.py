"""`watchtower runbooks validate` and `watchtower runbook run`, as a person types them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.watchtower.runbook.conftest import Aws
from watchtower.cli import main
from watchtower.runbook import commands

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def invoke(
    args: list[str], env: dict[str, Any] | None = None, answers: str | None = None
) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env, input=answers)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_validate_the_repository_runbooks() -> None:
    code, out, err = invoke(["runbooks", "validate", str(ROOT / "runbooks")])
    assert (code, out) == (0, "")
    assert err.strip() == "12 runbooks, no problems"


def test_validate_reports_every_problem_at_its_line() -> None:
    code, out, err = invoke(["runbooks", "validate", str(HERE / "broken")])
    assert code == 1
    front = str(Path("tests/watchtower/runbook/broken/bad-front.md"))
    steps = str(Path("tests/watchtower/runbook/broken/bad-steps.md"))
    lines = out.splitlines()
    assert lines == [
        f"{front}:2: id 'something-else' does not match the file name",
        f"{front}:5: params.user: a string parameter needs a pattern: or choices:",
        f"{steps}:12: step 'shell': unknown step kind 'shell'",
        f"{steps}:17: step 'reboot': unknown action 'lambda.reboot'",
        f"{steps}:23: step 'confirm': expect: 'throttled_requests >' is not a valid expression: "
        "invalid syntax",
        f"{steps}:30: step 'switch': with: missing parameter 'tabel' (declare it in params:)",
        f"{steps}:35: step 'switch': unknown check 'no_such_check'",
    ], out
    assert err.strip() == "7 problems in 2 files"


def test_run_a_dry_run_from_the_terminal(aws: Aws, tmp_path: Path) -> None:
    aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false", "OTHER": "kept"})
    env = {
        "AWS_ENDPOINT_URL": aws.url,
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'wt.sqlite'}",
        "WATCHTOWER_LAMBDA_FUNCTION": "image-api",
    }
    code, out, _ = invoke(["runbook", "run", "rollback-dual-write", "--dry-run"], env)
    assert code == 0, out
    assert "[planned] re-enable: Set ENABLE_DYNAMODB_DUAL_WRITE=true on the function" in out
    assert (
        'would call lambda.UpdateFunctionConfiguration {"FunctionName": "image-api", '
        '"Environment": {"Variables": {"ENABLE_DYNAMODB_DUAL_WRITE": "true", '
        '"OTHER": "<unchanged>"}}}' in out
    )
    assert out.rstrip().endswith(
        "succeeded: dry run: every parameter resolved; 2 steps planned, nothing changed"
    )
    assert aws.environment()["ENABLE_DYNAMODB_DUAL_WRITE"] == "false"

    # Without a terminal to ask at, the approval is refused: nothing changes, exit 1.
    code, out, _ = invoke(["runbook", "run", "rollback-dual-write", "--as", "olive"], env)
    assert code == 1
    assert "no terminal to ask at: refused" in out
    assert "cancelled: step 're-enable' rejected by olive: no terminal to ask at; refused" in out
    assert aws.environment()["ENABLE_DYNAMODB_DUAL_WRITE"] == "false"

    code, _, err = invoke(["runbook", "run", "rollback-dual-write", "--param", "function=a b"], env)
    assert code == 2 and "parameter 'function'" in err
    code, _, err = invoke(["runbook", "run", "no-such-runbook"], env)
    assert code == 2 and "no runbook 'no-such-runbook'" in err


def test_approvals_are_asked_at_the_terminal(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "false", "OTHER": "kept"})
    env = {
        "AWS_ENDPOINT_URL": aws.url,
        "WATCHTOWER_DATABASE_URL": f"sqlite:///{tmp_path / 'wt.sqlite'}",
        "WATCHTOWER_LAMBDA_FUNCTION": "image-api",
    }
    monkeypatch.setattr(commands, "_can_ask", lambda: True)
    # Olive answers yes, names herself (refused: a second operator must), then Ada.
    answers = "y\nolive\ny\nada\n"
    code, out, _ = invoke(["runbook", "run", "rollback-dual-write", "--as", "olive"], env, answers)
    assert code == 0, out
    assert "refused: olive started this run and cannot approve it alone" in out
    assert "[ok] re-enable: Set ENABLE_DYNAMODB_DUAL_WRITE=true on the function" in out
    assert out.rstrip().endswith("succeeded: done")
    assert aws.environment() == {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "OTHER": "kept"}


@pytest.mark.slow
def test_runbooks_test_proves_a_runbook_in_its_own_sandbox() -> None:
    """The command as CI runs it: its own moto, Redis and PostgreSQL, one line per pass."""
    code, out, _err = invoke(["runbooks", "test", "dynamodb-throttling"])
    lines = [line for line in out.splitlines() if line.startswith(("ok", "FAIL"))]
    assert code == 0, out
    assert [line.split()[2] for line in lines] == [
        "dry-run",
        "real",
        "fail:switch-to-on-demand",
        "undone:switch-to-on-demand",
        "killed:switch-to-on-demand",
    ]
    assert "5 passes, 0 failed" in out


def test_runbooks_test_refuses_an_unknown_runbook() -> None:
    code, _out, err = invoke(["runbooks", "test", "no-such-runbook"])
    assert code == 2 and "no runbook no-such-runbook" in err
