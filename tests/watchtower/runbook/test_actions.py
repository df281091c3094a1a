"""Each action against the moto server or a real Redis: what it does, what its plan shows, and
what it refuses. Provisioned concurrency is the one exception (the moto server answers 404)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import redis
from botocore.stub import Stubber

from image_core.cache import RedisGalleryCache, generation_key, page_key, pages_pattern
from tests.watchtower.runbook.conftest import BUCKET, FUNCTION, TABLE, Aws
from watchtower.config import Settings
from watchtower.runbook.actions import cache_invalidate_user_gallery as gallery
from watchtower.runbook.actions import registry
from watchtower.runbook.actions.base import Action, ActionContext
from watchtower.runbook.errors import ActionError, ParamError

ACTIONS = registry()


def context(
    aws: Callable[[str], Any],
    *,
    redis_client: Any = None,
    record: Callable[[str, Mapping[str, Any]], None] = lambda kind, detail: None,
) -> ActionContext:
    return ActionContext(
        settings=Settings(),
        aws=aws,
        redis=(lambda: redis_client) if redis_client is not None else None,
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        execution_id="e-1",
        step_id="s-1",
        record=record,
    )


def act(name: str, ctx: ActionContext, /, **inputs: Any) -> dict[str, Any]:
    action: Action = ACTIONS[name]
    return action.run(action.validate(inputs), ctx)


def plan(name: str, ctx: ActionContext, /, **inputs: Any) -> list[dict[str, Any]]:
    action: Action = ACTIONS[name]
    return [c.as_json() for c in action.plan(action.validate(inputs), ctx)]


def test_every_action_declares_itself() -> None:
    assert set(ACTIONS) >= {
        "cache.invalidate_user_gallery",
        "cloudfront.create_invalidation",
        "cloudfront.get_distribution",
        "cloudfront.get_invalidation",
        "cutover.record_event",
        "dynamodb.describe_table",
        "dynamodb.set_billing_mode",
        "lambda.get_configuration",
        "lambda.get_provisioned_concurrency",
        "lambda.set_environment_variable",
        "lambda.set_provisioned_concurrency",
        "lambda.set_reserved_concurrency",
        "s3.head_bucket",
    }
    for action in ACTIONS.values():
        assert action.title and all(
            p.pattern or p.type != "string" or p.choices for p in action.inputs
        )


# -- CloudFront ---------------------------------------------------------------------------------


def test_invalidation_paths_are_validated(aws: Aws) -> None:
    action = ACTIONS["cloudfront.create_invalidation"]
    good = action.validate({"distribution_id": "E1", "paths": ["/a/*", "/b.jpg", "/a/*"]})
    assert good["paths"] == ["/a/*", "/b.jpg"]  # duplicates dropped
    for paths, says in [
        (["a/b"], "does not match"),  # must start with /
        (["/a/*/b"], "does not match"),  # a wildcard only at the end
        (["/a b"], "does not match"),
        (["/a\nb"], "control characters"),
        ([f"/{n}" for n in range(31)], "at most 30 items"),
        ([f"/{n}/*" for n in range(16)], "at most 15 wildcard paths"),
        ([], "at least one path"),
    ]:
        with pytest.raises(ParamError, match=says):
            action.validate({"distribution_id": "E1", "paths": paths})
    with pytest.raises(ParamError, match="distribution_id"):
        action.validate({"distribution_id": "e1; rm", "paths": ["/a"]})


def test_invalidation_against_moto(aws: Aws) -> None:
    distribution = aws.distribution()
    ctx = context(aws.client)
    calls = plan(
        "cloudfront.create_invalidation", ctx, distribution_id=distribution, paths=["/t/*"]
    )
    assert calls == [
        {
            "service": "cloudfront",
            "operation": "CreateInvalidation",
            "parameters": {
                "DistributionId": distribution,
                "InvalidationBatch": {
                    "Paths": {"Quantity": 1, "Items": ["/t/*"]},
                    "CallerReference": "watchtower-e-1-s-1",
                },
            },
        }
    ]
    assert aws.invalidations(distribution) == []  # planning changed nothing
    out = act("cloudfront.create_invalidation", ctx, distribution_id=distribution, paths=["/t/*"])
    assert out["paths"] == ["/t/*"] and out["invalidation_id"]
    assert [i["Id"] for i in aws.invalidations(distribution)] == [out["invalidation_id"]]
    seen = act(
        "cloudfront.get_invalidation",
        ctx,
        distribution_id=distribution,
        invalidation_id=out["invalidation_id"],
    )
    # AWS says Completed; moto up to 5.2.5 said COMPLETED, later ones say Completed: compared
    # without case, so the test holds on either.
    assert seen["status"].lower() == "completed" and seen["completed"] is True
    described = act("cloudfront.get_distribution", ctx, distribution_id=distribution)
    assert described["deployed"] and described["enabled"] and described["default_ttl"] == 86400
    with pytest.raises(ActionError, match="distribution 'NOPE'"):
        act("cloudfront.get_distribution", ctx, distribution_id="NOPE")


# -- Lambda -------------------------------------------------------------------------------------


def test_set_environment_variable_keeps_every_other_variable(aws: Aws) -> None:
    aws.function({"ENABLE_DYNAMODB_DUAL_WRITE": "true", "DB_PASSWORD": "hunter2", "A": "1"})
    ctx = context(aws.client)
    calls = plan(
        "lambda.set_environment_variable",
        ctx,
        function=FUNCTION,
        name="ENABLE_DYNAMODB_DUAL_WRITE",
        value="false",
    )
    update = calls[1]
    assert (update["service"], update["operation"]) == ("lambda", "UpdateFunctionConfiguration")
    assert update["parameters"]["Environment"]["Variables"] == {
        "ENABLE_DYNAMODB_DUAL_WRITE": "false",
        "DB_PASSWORD": "<unchanged>",  # other values may be secrets: never shown
        "A": "<unchanged>",
    }
    assert aws.environment()["ENABLE_DYNAMODB_DUAL_WRITE"] == "true"  # the plan changed nothing
    out = act(
        "lambda.set_environment_variable",
        ctx,
        function=FUNCTION,
        name="ENABLE_DYNAMODB_DUAL_WRITE",
        value="false",
    )
    assert out["previous"] == "true" and out["value"] == "false"
    assert out["kept"] == ["A", "DB_PASSWORD"]
    assert aws.environment() == {
        "ENABLE_DYNAMODB_DUAL_WRITE": "false",
        "DB_PASSWORD": "hunter2",
        "A": "1",
    }
    act("lambda.set_environment_variable", ctx, function=FUNCTION, name="A", unset=True)
    assert aws.environment() == {"ENABLE_DYNAMODB_DUAL_WRITE": "false", "DB_PASSWORD": "hunter2"}
    seen = act(
        "lambda.get_configuration", ctx, function=FUNCTION, variables=["ENABLE_DYNAMODB_DUAL_WRITE"]
    )
    assert seen["variables"] == {"ENABLE_DYNAMODB_DUAL_WRITE": "false"}  # only those asked for
    assert seen["variable_names"] == ["DB_PASSWORD", "ENABLE_DYNAMODB_DUAL_WRITE"]
    assert seen["code_size_bytes"] > 0 and seen["reserved_concurrency"] is None
    with pytest.raises(ParamError, match="value"):
        ACTIONS["lambda.set_environment_variable"].validate({"function": FUNCTION, "name": "A"})
    with pytest.raises(ActionError, match="function 'missing'"):
        act("lambda.set_environment_variable", ctx, function="missing", name="A", value="1")


def test_reserved_concurrency_against_moto(aws: Aws) -> None:
    aws.function({})
    ctx = context(aws.client)
    assert plan("lambda.set_reserved_concurrency", ctx, function=FUNCTION, count=5)[0][
        "parameters"
    ] == {"FunctionName": FUNCTION, "ReservedConcurrentExecutions": 5}
    out = act("lambda.set_reserved_concurrency", ctx, function=FUNCTION, count=5)
    assert out == {"function": FUNCTION, "count": 5, "previous": None}
    assert act("lambda.get_configuration", ctx, function=FUNCTION)["reserved_concurrency"] == 5
    with pytest.raises(ParamError, match="above the maximum"):
        ACTIONS["lambda.set_reserved_concurrency"].validate({"function": FUNCTION, "count": 10**6})


def test_provisioned_concurrency_fails_clearly_against_moto(aws: Aws) -> None:
    # The moto server has no provisioned-concurrency API (it answers 404): the action must
    # fail with a message naming the function, never pretend it worked.
    aws.function({})
    with pytest.raises(ActionError, match=f"function '{FUNCTION}':live: .*404"):
        act(
            "lambda.set_provisioned_concurrency",
            context(aws.client),
            function=FUNCTION,
            qualifier="live",
            count=2,
        )


@pytest.mark.parametrize(
    ("spelled", "completed"),
    [("Completed", True), ("COMPLETED", True), ("InProgress", False), ("IN_PROGRESS", False)],
)
def test_invalidation_status_in_either_spelling(aws: Aws, spelled: str, completed: bool) -> None:
    # The moto server answers in one spelling only (which one depends on its version), so the
    # other is given by botocore's Stubber for this one call: AWS's "Completed" and "InProgress",
    # older moto's "COMPLETED".
    client = boto3.client("cloudfront", endpoint_url=aws.url, region_name="us-east-1")
    answer = {
        "Invalidation": {
            "Id": "I1",
            "Status": spelled,
            "CreateTime": datetime(2026, 1, 2, tzinfo=UTC),
            "InvalidationBatch": {
                "Paths": {"Quantity": 1, "Items": ["/t/*"]},
                "CallerReference": "r",
            },
        }
    }
    with Stubber(client) as stub:
        stub.add_response(
            "get_invalidation", answer, expected_params={"DistributionId": "E1", "Id": "I1"}
        )
        seen = act(
            "cloudfront.get_invalidation",
            context(lambda service: client),
            distribution_id="E1",
            invalidation_id="I1",
        )
    assert seen == {"status": spelled, "completed": completed}


def test_provisioned_concurrency_with_botocores_stubber(aws: Aws) -> None:
    # moto lacks this API, so these two calls are answered by botocore's Stubber, which checks
    # each request against the service model: the exact parameters the action sends.
    client = boto3.client("lambda", endpoint_url=aws.url, region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_provisioned_concurrency_config",
            service_error_code="ProvisionedConcurrencyConfigNotFoundException",
            http_status_code=404,
            expected_params={"FunctionName": FUNCTION, "Qualifier": "live"},
        )
        stub.add_response(
            "put_provisioned_concurrency_config",
            {
                "RequestedProvisionedConcurrentExecutions": 3,
                "AllocatedProvisionedConcurrentExecutions": 0,
                "Status": "IN_PROGRESS",
            },
            expected_params={
                "FunctionName": FUNCTION,
                "Qualifier": "live",
                "ProvisionedConcurrentExecutions": 3,
            },
        )
        stub.add_response(
            "get_provisioned_concurrency_config",
            {
                "RequestedProvisionedConcurrentExecutions": 3,
                "AvailableProvisionedConcurrentExecutions": 3,
                "AllocatedProvisionedConcurrentExecutions": 3,
                "Status": "READY",
            },
            expected_params={"FunctionName": FUNCTION, "Qualifier": "live"},
        )
        ctx = context(lambda service: client)
        out = act(
            "lambda.set_provisioned_concurrency", ctx, function=FUNCTION, qualifier="live", count=3
        )
        assert out["previous"] is None and out["status"] == "IN_PROGRESS" and out["requested"] == 3
        seen = act("lambda.get_provisioned_concurrency", ctx, function=FUNCTION, qualifier="live")
        assert seen["status"] == "READY" and seen["allocated"] == 3
        stub.assert_no_pending_responses()
    with pytest.raises(ParamError, match="alias or a version"):
        ACTIONS["lambda.set_provisioned_concurrency"].validate(
            {"function": FUNCTION, "qualifier": "LATEST", "count": 1}
        )


# -- DynamoDB and S3 ----------------------------------------------------------------------------


def test_billing_mode_both_ways_against_moto(aws: Aws) -> None:
    aws.table(provisioned=True)
    ctx = context(aws.client)
    described = act("dynamodb.describe_table", ctx, table=TABLE)
    assert described["billing_mode"] == "PROVISIONED"
    assert (described["read_capacity"], described["write_capacity"]) == (5, 5)
    calls = plan("dynamodb.set_billing_mode", ctx, table=TABLE, mode="PAY_PER_REQUEST")
    assert calls[1]["parameters"] == {"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST"}
    assert aws.billing_mode() == "PROVISIONED"
    out = act("dynamodb.set_billing_mode", ctx, table=TABLE, mode="PAY_PER_REQUEST")
    assert out["previous_mode"] == "PROVISIONED" and out["changed"]
    assert (out["previous_read_capacity"], out["previous_write_capacity"]) == (5, 5)
    assert aws.billing_mode() == "PAY_PER_REQUEST"
    again = act("dynamodb.set_billing_mode", ctx, table=TABLE, mode="PAY_PER_REQUEST")
    assert not again["changed"]  # UpdateTable refuses a no-op; the action does not send one
    back = plan(
        "dynamodb.set_billing_mode",
        ctx,
        table=TABLE,
        mode="PROVISIONED",
        read_capacity=7,
        write_capacity=8,
    )[1]["parameters"]
    throughput = {"ReadCapacityUnits": 7, "WriteCapacityUnits": 8}
    assert back["GlobalSecondaryIndexUpdates"] == [
        {"Update": {"IndexName": "by_user", "ProvisionedThroughput": throughput}}
    ]
    act(
        "dynamodb.set_billing_mode",
        ctx,
        table=TABLE,
        mode="PROVISIONED",
        read_capacity=7,
        write_capacity=8,
    )
    assert act("dynamodb.describe_table", ctx, table=TABLE)["read_capacity"] == 7
    with pytest.raises(ParamError, match="needs read_capacity"):
        ACTIONS["dynamodb.set_billing_mode"].validate({"table": TABLE, "mode": "PROVISIONED"})
    with pytest.raises(ParamError, match="not one of"):
        ACTIONS["dynamodb.set_billing_mode"].validate({"table": TABLE, "mode": "FREE"})


def test_head_bucket_reports_what_it_found(aws: Aws) -> None:
    aws.bucket()
    ctx = context(aws.client)
    assert act("s3.head_bucket", ctx, bucket=BUCKET)["reachable"] is True
    missing = act("s3.head_bucket", ctx, bucket="no-such-bucket")
    assert missing == {
        "bucket": "no-such-bucket",
        "reachable": False,
        "status_code": 404,
        "error": "no such bucket",
    }


# -- the gallery cache --------------------------------------------------------------------------


def test_the_key_format_is_the_image_cores() -> None:
    for user in ("u-17", "a.b@c", "x+y=z", "A_1:2"):
        assert gallery.generation_key(user) == generation_key(user)
        assert page_key(user, "g1", 20, None).startswith(gallery.pages_prefix(user, "g1"))
        assert pages_pattern(user).startswith(gallery.user_pattern(user)[:-1])


def test_invalidate_user_gallery_with_scan_never_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisGalleryCache(client, ttl=600)
    try:
        for n in range(600):  # more than one SCAN and one UNLINK batch
            cache.put_page("u-17", 20, f"c{n}", {"items": [n]}, "0")
        client.set(generation_key("u-17"), "g1")
        for n in range(600):
            cache.put_page("u-17", 20, f"c{n}", {"items": [n]}, "g1")
        cache.put_page("u-170", 20, None, {"items": []}, "0")  # a prefix of it: must survive
        cache.put_page("other", 20, None, {"items": []}, "0")
        assert cache.get_page("u-17", 20, "c5").page == {"items": [5]}
        client.config_resetstat()
        ctx = context(lambda service: None, redis_client=client)
        calls = plan("cache.invalidate_user_gallery", ctx, user="u-17")
        assert [c["operation"] for c in calls] == ["SET", "SCAN", "UNLINK"]
        assert calls[1]["parameters"]["match"] == "gallery:{u-17}:*"
        assert client.dbsize() == 1203  # the plan touched nothing
        out = act("cache.invalidate_user_gallery", ctx, user="u-17")
        assert out["unlinked"] == 1200 and out["pattern"] == "gallery:{u-17}:*"
        # What the image service reads now: a miss, under the new generation.
        lookup = cache.get_page("u-17", 20, "c5")
        assert lookup.page is None and lookup.generation == out["generation"]
        assert sorted(client.scan_iter(match="*")) == sorted(
            [
                generation_key("u-17"),
                page_key("u-170", "0", 20, None),
                page_key("other", "0", 20, None),
            ]
        )
        stats = client.info("commandstats")
        assert "cmdstat_scan" in stats and "cmdstat_unlink" in stats
        assert "cmdstat_keys" not in stats
    finally:
        client.close()
    action = ACTIONS["cache.invalidate_user_gallery"]
    for bad in ("*", "u 1", "u-1*", "", "a" * 200, "-x"):
        with pytest.raises(ParamError):
            action.validate({"user": bad})


def test_invalidate_user_gallery_needs_the_redis_setting() -> None:
    with pytest.raises(ActionError, match="WATCHTOWER_IMAGE_REDIS_URL"):
        act("cache.invalidate_user_gallery", context(lambda service: None), user="u-1")


def test_record_cutover_event_writes_the_audit_hook() -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []
    ctx = context(lambda s: None, record=lambda kind, detail: recorded.append((kind, dict(detail))))
    assert (
        plan("cutover.record_event", ctx, event="window_started", function=FUNCTION)[0]["operation"]
        == "RecordCutoverEvent"
    )
    assert recorded == []
    out = act("cutover.record_event", ctx, event="window_started", function=FUNCTION)
    assert out["ends_at"] == "2026-01-03T03:04:05+00:00" and out["hours"] == 24
    assert recorded == [("cutover.window_started", out)]


# -- Lambda aliases and versions (the moto server supports both) -------------------------------


def _aliased(aws: Aws, environment: Mapping[str, str], alias: str = "live") -> str:
    """The function with `environment`, published as a version the alias serves."""
    aws.function(dict(environment))
    lam = aws.client("lambda")
    version = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name=alias, FunctionVersion=version)
    return str(version)


def _served(aws: Aws, alias: str = "live") -> tuple[str, dict[str, str]]:
    lam = aws.client("lambda")
    version = lam.get_alias(FunctionName=FUNCTION, Name=alias)["FunctionVersion"]
    config = lam.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
    return version, dict(config["Environment"]["Variables"])


def test_set_alias_variable_publishes_and_moves_the_alias(aws: Aws) -> None:
    first = _aliased(aws, {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "DB_PASSWORD": "hunter2"})
    ctx = context(aws.client)
    inputs = {"function": FUNCTION, "alias": "live", "name": "ENABLE_DYNAMODB_DUAL_WRITE"}

    calls = plan("lambda.set_alias_variable", ctx, **inputs, value="false")
    assert [c["operation"] for c in calls] == [
        "GetFunctionConfiguration",
        "UpdateFunctionConfiguration",
        "GetFunctionConfiguration",
        "PublishVersion",
        "UpdateAlias",
    ]
    assert calls[0]["parameters"] == {"FunctionName": FUNCTION, "Qualifier": first}
    assert calls[1]["parameters"]["Environment"]["Variables"] == {
        "ENABLE_DYNAMODB_DUAL_WRITE": "false",
        "DB_PASSWORD": "<unchanged>",
    }
    assert f"alias live was at version {first}" in calls[3]["parameters"]["Description"]
    assert calls[4]["parameters"]["Name"] == "live"
    assert calls[4]["parameters"]["RoutingConfig"] == {"AdditionalVersionWeights": {}}
    assert _served(aws) == (first, {"ENABLE_DYNAMODB_DUAL_WRITE": "true", "DB_PASSWORD": "hunter2"})

    out = act("lambda.set_alias_variable", ctx, **inputs, value="false")
    assert out["previous_version"] == first and out["version"] != first
    assert out["previous"] == "true" and out["value"] == "false"
    assert _served(aws) == (
        out["version"],
        {"ENABLE_DYNAMODB_DUAL_WRITE": "false", "DB_PASSWORD": "hunter2"},
    )
    seen = act("lambda.get_alias", ctx, function=FUNCTION, alias="live", variables=["DB_PASSWORD"])
    assert seen["version"] == out["version"] and seen["recorded_previous"] == first
    assert seen["variables"] == {"DB_PASSWORD": "hunter2"} and not seen["weighted"]

    # The rollback: no version given, the one recorded at the flip.
    move = plan("lambda.move_alias", ctx, function=FUNCTION, alias="live")
    assert move[-1]["operation"] == "UpdateAlias"
    assert move[-1]["parameters"]["FunctionVersion"] == first
    back = act("lambda.move_alias", ctx, function=FUNCTION, alias="live")
    assert back == {
        "function": FUNCTION,
        "alias": "live",
        "previous_version": out["version"],
        "previous_weights": {},
        "moved": True,
        "version": first,
    }
    assert _served(aws)[0] == first
    # Version 1 records nothing: a second rollback moves nothing, and says so.
    again = act("lambda.move_alias", ctx, function=FUNCTION, alias="live")
    assert again["moved"] is False and _served(aws)[0] == first


def test_set_alias_variable_refuses_to_publish_other_code(aws: Aws) -> None:
    import io
    import zipfile

    _aliased(aws, {"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return 'new'\n")
    aws.client("lambda").update_function_code(FunctionName=FUNCTION, ZipFile=code.getvalue())
    with pytest.raises(ActionError, match="would deploy other code"):
        act(
            "lambda.set_alias_variable",
            context(aws.client),
            function=FUNCTION,
            alias="live",
            name="ENABLE_DYNAMODB_DUAL_WRITE",
            value="false",
        )
    assert _served(aws)[1] == {"ENABLE_DYNAMODB_DUAL_WRITE": "true"}


def test_weighted_alias_is_read_with_both_versions(aws: Aws) -> None:
    first = _aliased(aws, {"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    lam = aws.client("lambda")
    lam.update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {"ENABLE_DYNAMODB_DUAL_WRITE": "false"}}
    )
    second = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_alias(
        FunctionName=FUNCTION,
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {second: 0.1}},
    )
    seen = act("lambda.get_alias", context(aws.client), function=FUNCTION, alias="live")
    assert seen["version"] == first and seen["weights"] == {second: 0.1} and seen["weighted"]
    out = act(
        "lambda.set_alias_variable",
        context(aws.client),
        function=FUNCTION,
        alias="live",
        name="ENABLE_DYNAMODB_DUAL_WRITE",
        value="false",
    )
    assert out["previous_weights"] == {second: 0.1}
    after = lam.get_alias(FunctionName=FUNCTION, Name="live")
    assert after["FunctionVersion"] == out["version"]
    assert not (after.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
