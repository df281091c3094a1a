"""What the runbook actions change: asked of IAM's policy simulator, when the role may ask."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watchtower.doctor import Finding
from watchtower.doctor.calls import why

# The calls that change things, per action the shipped runbooks use: asked of the simulator.
MUTATING = {
    "lambda.set_environment_variable": ["lambda:UpdateFunctionConfiguration"],
    "lambda.set_alias_variable": [
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
    ],
    "lambda.move_alias": ["lambda:UpdateAlias"],
    "lambda.set_reserved_concurrency": ["lambda:PutFunctionConcurrency"],
    "lambda.set_provisioned_concurrency": ["lambda:PutProvisionedConcurrencyConfig"],
    "dynamodb.set_billing_mode": ["dynamodb:UpdateTable"],
    "cloudfront.create_invalidation": ["cloudfront:CreateInvalidation"],
}


def action_findings(client: Callable[..., Any]) -> list[Finding]:
    """What the runbook actions change, asked of IAM's policy simulator when allowed."""
    principal, why = _principal(client)
    out: list[Finding] = []
    for action, iam_actions in MUTATING.items():
        if principal is not None:
            found = _simulate(client, action, iam_actions, principal)
            if found.state != "unknown":
                out.append(found)
                continue
            principal, why = None, found.detail.split("(", 1)[-1].rstrip(")")
        if principal is None:
            out.append(
                Finding(
                    feature=f"action {action}",
                    source=", ".join(iam_actions),
                    state="unknown",
                    detail=f"not verified: the policy simulator was not allowed ({why})",
                    fix="grant iam:SimulatePrincipalPolicy to let doctor check it, or "
                    "compare with docs/deployment.md by hand",
                )
            )
            continue
        out.append(_simulate(client, action, iam_actions, principal))
    return out


def _principal(client: Callable[..., Any]) -> tuple[str | None, str]:
    try:
        arn = str(client("sts").get_caller_identity()["Arn"])
    except Exception as exc:  # botocore's errors, or no credentials at all
        return None, why(exc)
    # An assumed role's session ARN is simulated as its role.
    if ":assumed-role/" in arn:
        account = arn.split(":")[4]
        role = arn.split(":assumed-role/")[1].split("/")[0]
        arn = f"arn:aws:iam::{account}:role/{role}"
    return arn, ""


def _simulate(
    client: Callable[..., Any], action: str, iam_actions: list[str], principal: str
) -> Finding:
    try:
        answer = client("iam").simulate_principal_policy(
            PolicySourceArn=principal, ActionNames=iam_actions
        )
    except Exception as exc:
        return Finding(
            feature=f"action {action}",
            source=", ".join(iam_actions),
            state="unknown",
            detail=f"not verified: the policy simulator was not allowed ({why(exc)})",
            fix="grant iam:SimulatePrincipalPolicy, or compare with docs/deployment.md",
        )
    denied = [
        r["EvalActionName"]
        for r in answer.get("EvaluationResults", [])
        if r.get("EvalDecision") != "allowed"
    ]
    if denied:
        return Finding(
            feature=f"action {action}",
            source=", ".join(iam_actions),
            state="missing",
            detail=f"not granted: {', '.join(denied)}",
            fix="grant them (docs/deployment.md, Runbook actions)",
        )
    return Finding(
        feature=f"action {action}",
        source=", ".join(iam_actions),
        state="ok",
        detail="granted",
    )
