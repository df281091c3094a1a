from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.watchtower.checks.conftest import World, run, settings_for
from watchtower.checks.lambda_cold_starts import (
    LambdaColdStarts,
    by_version,
    judge,
    nearest_rank,
    parse_report,
    stream_version,
    summarise,
)
from watchtower.config import Settings
from watchtower.model import Status
from watchtower.sandbox.servers import MotoServer

PARAMS = dict(LambdaColdStarts.defaults)


def text_report(n: int, init_ms: float | None = None) -> str:
    line = (
        f"REPORT RequestId: 3f5c-{n:04d}\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        f"Memory Size: 128 MB\tMax Memory Used: 70 MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms} ms\t"
    return line + "\n"


def json_report(n: int, init_ms: float | None = None) -> str:
    metrics: dict[str, float] = {
        "durationMs": 12.34,
        "billedDurationMs": 13,
        "memorySizeMB": 128,
        "maxMemoryUsedMB": 70,
    }
    if init_ms is not None:
        metrics["initDurationMs"] = init_ms
    return json.dumps(
        {
            "time": "2024-05-01T12:00:00.000Z",
            "type": "platform.report",
            "record": {"requestId": f"9a1b-{n:04d}", "metrics": metrics, "status": "success"},
        }
    )


def test_parse_text_report_with_float_figures() -> None:
    report = parse_report(text_report(1, 234.56))
    assert report is not None
    assert report.request_id == "3f5c-0001"
    assert report.duration_ms == 12.34  # not Billed Duration's 13
    assert report.init_duration_ms == 234.56
    assert report.cold


def test_parse_text_report_of_a_warm_start() -> None:
    report = parse_report(text_report(2))
    assert report is not None and not report.cold


def test_parse_text_report_with_xray_and_restore_fields() -> None:
    line = (
        "REPORT RequestId: abc\tDuration: 5.00 ms\tBilled Duration: 6 ms\t"
        "Memory Size: 512 MB\tMax Memory Used: 90 MB\tRestore Duration: 300.12 ms\t"
        "Billed Restore Duration: 301 ms\t\nXRAY TraceId: 1-5e1b\tSegmentId: 6f\tSampled: true"
    )
    report = parse_report(line)
    assert report is not None
    assert report.duration_ms == 5.0
    assert report.init_duration_ms is None


def test_parse_json_platform_report() -> None:
    report = parse_report(json_report(3, 1500.5))
    assert report is not None
    assert report.request_id == "9a1b-0003"
    assert report.duration_ms == 12.34
    assert report.init_duration_ms == 1500.5


@pytest.mark.parametrize(
    "line",
    [
        "START RequestId: abc Version: $LATEST",
        "END RequestId: abc",
        "[INFO] REPORT generated for user u-1",
        '{"type": "platform.start", "record": {"requestId": "abc"}}',
        '{"_aws": {"CloudWatchMetrics": []}, "REPORT": 1}',
        "{not json",
        '["platform.report"]',
    ],
)
def test_lines_that_are_not_reports_are_skipped(line: str) -> None:
    assert parse_report(line) is None


def test_nearest_rank_p95() -> None:
    assert nearest_rank([], 95) is None
    assert nearest_rank([7.0], 95) == 7.0
    assert nearest_rank(range(1, 21), 95) == 19  # rank ceil(0.95 * 20) = 19
    assert nearest_rank(range(1, 101), 95) == 95
    assert nearest_rank(range(1, 102), 95) == 96  # rank ceil(95.95) = 96


def test_summarise_mixes_both_formats_and_counts_a_request_once() -> None:
    lines = [
        text_report(1, 200.0),
        text_report(1, 200.0),
        text_report(2),
        json_report(1, 900.0),
        json_report(2),
        "START RequestId: x",
    ]
    assert summarise(lines) == {
        "invocations": 4,
        "cold_starts": 2,
        "cold_start_ratio": 0.5,
        "init_p95_ms": 900.0,
    }


def test_judge_no_invocations_is_unknown() -> None:
    status, reason = judge(summarise([]), PARAMS)
    assert status is Status.UNKNOWN
    assert reason == "no invocations seen: no REPORT lines in the function's log group in 5 min"


@pytest.mark.parametrize(
    ("cold", "init_ms", "status"),
    [
        (0, None, Status.OK),
        (1, 300.0, Status.OK),  # 1 in 40 = 2.5%
        (2, 300.0, Status.WARNING),  # 5%
        (10, 300.0, Status.CRITICAL),  # 25%
        (1, 1500.0, Status.WARNING),  # init P95 over 1 s
        (1, 3500.0, Status.CRITICAL),
    ],
)
def test_judge_share_and_init_p95(cold: int, init_ms: float | None, status: Status) -> None:
    lines = [text_report(n, init_ms if n < cold else None) for n in range(40)]
    assert judge(summarise(lines), PARAMS)[0] is status


def test_judge_does_not_judge_the_share_of_a_quiet_function() -> None:
    lines = [text_report(0, 400.0), text_report(1), text_report(2)]
    status, reason = judge(summarise(lines), PARAMS)
    assert status is Status.OK
    assert reason == (
        "1 cold start in 3 invocations (33.3%) in 5 min, init P95 400 ms; too few "
        "invocations to judge the share (at least 20)"
    )


def report_lines(
    world: World, cold: int, warm: int, *, init_ms: float = 250.5, json_format: bool = False
) -> list[tuple[datetime, str]]:
    make = json_report if json_format else text_report
    lines = [
        (world.ago(100 + n), make(n, init_ms if n < cold else None)) for n in range(cold + warm)
    ]
    # What else the function's log stream holds, inside and outside the window.
    lines += [
        (world.ago(100), "START RequestId: 3f5c-0000 Version: $LATEST"),
        (world.ago(99), "END RequestId: 3f5c-0000"),
        (world.ago(3600), make(9999, 9000.0)),
    ]
    return lines


@pytest.mark.parametrize("json_format", [False, True])
def test_few_cold_starts_are_ok(
    world: World, settings: Settings, now: datetime, json_format: bool
) -> None:
    world.logs(report_lines(world, cold=1, warm=39, json_format=json_format))

    result = run(settings, "lambda_cold_starts", now=now)["lambda_cold_starts"]

    assert result.status is Status.OK, result.reason
    assert result.figures == {
        "invocations": 40,
        "cold_starts": 1,
        "cold_start_ratio": 0.025,
        "init_p95_ms": 250.5,
    }


def test_many_cold_starts_are_a_warning(world: World, settings: Settings, now: datetime) -> None:
    world.logs(report_lines(world, cold=3, warm=27))

    result = run(settings, "lambda_cold_starts", now=now)["lambda_cold_starts"]

    assert result.status is Status.WARNING, result.reason
    assert result.reason.startswith("3 cold starts in 30 invocations (10.0%) in 5 min")


def test_slow_init_is_critical(world: World, settings: Settings, now: datetime) -> None:
    world.logs(report_lines(world, cold=1, warm=30, init_ms=3210.98, json_format=True))

    result = run(settings, "lambda_cold_starts", now=now)["lambda_cold_starts"]

    assert result.status is Status.CRITICAL
    assert result.figures["init_p95_ms"] == 3210.98
    assert "init P95 critical at 3000 ms" in result.reason


def test_no_report_lines_in_the_window_is_unknown(
    world: World, settings: Settings, now: datetime
) -> None:
    world.logs([(now - timedelta(hours=1), text_report(1, 300.0))])

    result = run(settings, "lambda_cold_starts", now=now)["lambda_cold_starts"]

    assert result.status is Status.UNKNOWN
    assert result.reason.startswith("no invocations seen")


def test_missing_log_group_is_unknown(moto: object, settings: Settings, now: datetime) -> None:
    result = run(settings, "lambda_cold_starts", now=now)["lambda_cold_starts"]

    assert result.status is Status.UNKNOWN
    assert "CloudWatch Logs group '/aws/lambda/image-api' could not be read" in result.reason


# -- by version (issue 14): only the streams of the version(s) the alias serves ------------------


@pytest.mark.parametrize(
    ("stream", "version"),
    [
        ("2024/05/01/[$LATEST]0a1b2c", "$LATEST"),
        ("2024/05/01/[12]0a1b2c", "12"),
        ("stream-1", None),
        ("2024/05/01/0a1b2c", None),
    ],
)
def test_the_version_is_read_from_the_log_stream_name(stream: str, version: str | None) -> None:
    assert stream_version(stream) == version


def test_lines_of_other_versions_and_unnamed_streams_are_left_out_and_counted() -> None:
    events = [
        ("2024/05/01/[2]a", text_report(1)),
        ("2024/05/01/[1]b", text_report(2)),
        ("2024/05/01/[1]b", "START RequestId: x Version: 1"),  # not a report: not counted
        ("my-stream", text_report(3)),
    ]
    lines, left_out = by_version(events, ["2"])
    assert lines == {"2": [text_report(1)]}
    assert left_out == 2


def published(world: World, *environments: dict[str, str]) -> list[str]:
    """The function, and one published version per environment (in order)."""
    world.function(environments[0])
    lam = world._client("lambda")
    versions = []
    for environment in environments:
        world.set_environment(environment)
        versions.append(str(lam.publish_version(FunctionName="image-api")["Version"]))
    return versions


def test_with_an_alias_only_the_version_it_serves_is_counted(
    world: World, moto: MotoServer, now: datetime
) -> None:
    old, new = published(world, {"N": "1"}, {"N": "2"})
    world._client("lambda").create_alias(FunctionName="image-api", Name="live", FunctionVersion=new)
    # The old version started cold all the time (it is no longer served); $LATEST, invoked
    # directly in a test, too. Neither counts.
    world.logs(report_lines(world, cold=30, warm=0), version=old)
    world.logs(report_lines(world, cold=10, warm=0), version="$LATEST")
    world.logs(report_lines(world, cold=1, warm=39), version=new)

    result = run(settings_for(moto.url, lambda_alias="live"), "lambda_cold_starts", now=now)[
        "lambda_cold_starts"
    ]

    assert result.status is Status.OK, result.reason
    assert result.figures["invocations"] == 40 and result.figures["cold_starts"] == 1
    assert result.reason == (
        "1 cold start in 40 invocations (2.5%) in 5 min, init P95 250 ms; alias live: "
        f"version {new} (100%) 1 cold start in 40 invocations, init P95 250 ms; "
        "40 REPORT lines of other versions left out"
    )


def test_a_weighted_alias_is_judged_over_both_versions_and_said_per_version(
    world: World, moto: MotoServer, now: datetime
) -> None:
    main, canary = published(world, {"N": "1"}, {"N": "2"})
    world._client("lambda").create_alias(
        FunctionName="image-api",
        Name="live",
        FunctionVersion=main,
        RoutingConfig={"AdditionalVersionWeights": {canary: 0.1}},
    )
    world.logs(report_lines(world, cold=1, warm=35), version=main)
    canary_lines = [
        (world.ago(50 + n), text_report(100 + n, 900.0 if n < 3 else None)) for n in range(4)
    ]
    world.logs(canary_lines, version=canary)

    result = run(settings_for(moto.url, lambda_alias="live"), "lambda_cold_starts", now=now)[
        "lambda_cold_starts"
    ]

    # Both versions' lines count: 40 invocations, 4 cold (10%).
    assert result.figures["invocations"] == 40, result.reason
    assert result.figures["cold_starts"] == 4
    assert result.status is Status.WARNING, result.reason  # 10% >= the 5% warning
    assert result.reason.endswith(
        f"alias live: version {main} (90%) 1 cold start in 36 invocations, init P95 250 ms, "
        f"version {canary} (10%) 3 cold starts in 4 invocations, init P95 900 ms"
    )


def test_an_alias_that_cannot_be_read_is_unknown(
    world: World, moto: MotoServer, now: datetime
) -> None:
    world.function({})
    world.logs(report_lines(world, cold=1, warm=39))

    result = run(settings_for(moto.url, lambda_alias="live"), "lambda_cold_starts", now=now)[
        "lambda_cold_starts"
    ]

    assert result.status is Status.UNKNOWN
    assert "alias 'live' of Lambda function 'image-api' could not be read" in result.reason
