"""The dual-write flip and its rollback through a Lambda alias, end to end against the moto
server (which supports versions and aliases): what the alias serves changes, the checks see it,
and the cutover events record the version ids."""

from __future__ import annotations

from tests.watchtower.runbook.conftest import FUNCTION, Aws, MakeHarness
from tests.watchtower.runbook.test_runbooks import _dual_write_platform, decide
from watchtower.runbook.model import ExecutionStatus

FLAG = "ENABLE_DYNAMODB_DUAL_WRITE"


def _behind_alias(aws: Aws) -> str:
    lam = aws.client("lambda")
    version = str(lam.publish_version(FunctionName=FUNCTION)["Version"])
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=version)
    return version


def _served(aws: Aws) -> tuple[str, str | None]:
    lam = aws.client("lambda")
    version = lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    config = lam.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
    return str(version), config["Environment"]["Variables"].get(FLAG)


def test_flip_and_rollback_move_the_alias(
    make_harness: MakeHarness, aws: Aws, legacy_url: str
) -> None:
    h = make_harness(legacy_database_url=legacy_url, lambda_alias="live")
    _dual_write_platform(aws, legacy_url, h.clock())
    first = _behind_alias(aws)

    dry = h.engine.start("disable-dual-write", params={}, started_by="olive", dry_run=True)
    h.run()
    run = h.get(dry)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    steps = h.steps(dry)
    assert (steps["read-alias"], steps["flip-alias"], steps["flip"]) == (
        "succeeded",
        "planned",
        "skipped",
    )
    planned = {s.step_id: s for s in run.steps}["flip-alias"].plan
    assert [c["operation"] for c in planned] == [
        "GetFunctionConfiguration",
        "UpdateFunctionConfiguration",
        "GetFunctionConfiguration",
        "PublishVersion",
        "UpdateAlias",
    ]
    assert planned[0]["parameters"]["Qualifier"] == first
    assert _served(aws) == (first, "true")  # a dry run moves nothing

    real = h.engine.start("disable-dual-write", params={}, started_by="olive")
    h.run()
    assert _served(aws) == (first, "true")  # nothing moves before the approval
    assert decide(h, real) == "flip-alias"
    run = h.get(real)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    flipped, flag = _served(aws)
    assert flipped != first and flag == "false"
    by_id = {s.step_id: s for s in run.steps}
    assert by_id["verify"].status.value == "succeeded"  # expect: flag == 0
    window = by_id["start-monitoring"].outputs
    assert (window["alias"], window["previous_version"], window["version"]) == (
        "live",
        first,
        flipped,
    )

    back = h.engine.start("rollback-dual-write", params={}, started_by="olive")
    h.run()
    assert decide(h, back) == "move-back"
    run = h.get(back)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    assert _served(aws) == (first, "true")  # back to the version recorded at the flip
    by_id = {s.step_id: s for s in run.steps}
    assert by_id["re-enable-alias"].status.value == "skipped"
    assert by_id["verify"].status.value == "succeeded"  # expect: flag == 1
    assert by_id["record"].outputs["version"] == first


def test_rollback_without_a_recorded_version_writes_the_flag(
    make_harness: MakeHarness, aws: Aws
) -> None:
    aws.function({FLAG: "false", "IMAGE_TABLE": "images"})
    first = _behind_alias(aws)  # flipped by hand: version 1 records nothing
    h = make_harness(lambda_alias="live")

    back = h.engine.start("rollback-dual-write", params={}, started_by="olive")
    h.run()
    assert decide(h, back) == "move-back"
    run = h.get(back)
    by_id = {s.step_id: s for s in run.steps}
    assert by_id["move-back"].outputs["moved"] is False
    assert decide(h, back) == "re-enable-alias"
    run = h.get(back)
    assert run.status is ExecutionStatus.SUCCEEDED, run.reason
    version, flag = _served(aws)
    assert version != first and flag == "true"


def test_the_cutover_window_records_the_version_ids() -> None:
    from watchtower.cutover.ports import parse_event_comment
    from watchtower.cutover.service import versions_comment

    # How the engine writes the record's audit entry, and how the cutover reads it back.
    detail = parse_event_comment(
        "event=window_started, function=image-api, alias=live, previous_version=3, version=4"
    )
    assert versions_comment(detail) == "alias live: version 3 -> 4"
    assert versions_comment({"event": "window_started", "function": "image-api"}) == ""
