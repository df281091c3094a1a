"""alerts/: promtool checks and unit-tests the rules, amtool checks the Alertmanager example, and
the rules, the routes and the metrics they read agree with each other.

Outside CI a missing promtool or amtool skips its test; in CI it fails it (Debian packages
`prometheus` and `prometheus-alertmanager`, installed by scripts/install-system-packages).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI
from watchtower import alerting
from watchtower.alerting import DEFAULT_ROUTES, parse_routes, select

ALERTS = Path(__file__).parents[3] / "alerts"
RULES = ALERTS / "watchtower.rules.yml"
METRICS_DOC = Path(__file__).parents[3] / "docs" / "metrics.md"
RUNBOOK_BASE = "http://127.0.0.1:8080/runbooks"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: prometheus / prometheus-alertmanager)"
        if IN_CI:
            pytest.fail(f"CI must provide it: {message}")
        pytest.skip(message)
    return path


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    out = run(tool("promtool"), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (ALERTS / "tests").glob("*.test.yml"))
    assert tests
    out = run(tool("promtool"), "test", "rules", *tests)
    assert out.count("SUCCESS") == len(tests)


def test_every_alert_is_unit_tested() -> None:
    tested = set()
    for path in (ALERTS / "tests").glob("*.test.yml"):
        for group in yaml.safe_load(path.read_text())["tests"]:
            tested |= {
                case["alertname"] for case in group.get("alert_rule_test", []) if case["exp_alerts"]
            }
    assert tested == {rule["alert"] for rule in rules()}


def test_amtool_checks_the_alertmanager_example() -> None:
    out = run(tool("amtool"), "check-config", str(ALERTS / "alertmanager.example.yml"))
    assert "SUCCESS" in out


def test_the_example_sends_everything_to_the_webhook_with_the_token() -> None:
    config = yaml.safe_load((ALERTS / "alertmanager.example.yml").read_text())
    assert config["route"]["receiver"] == "watchtower"
    (receiver,) = config["receivers"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith("/api/v1/alerts")
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"


REQUIRED = {
    "ImageUploadProbeFailing": "image-upload-failures",
    "ImageUploadSlow": "image-upload-failures",
    "ImageDynamoDBThrottling": "dynamodb-throttling",
    "ImageLambdaColdStarts": "lambda-cold-starts",
    "ImageCloudFrontHitRateLow": "cloudfront-cache-invalidation",
    "LegacyInsertsAfterCutover": "find-legacy-writer",
    # Watchtower's own alerts: each has a runbook of its own (issue 15), none the bare list.
    "WatchtowerCheckCritical": "watchtower-check-critical",
    "WatchtowerCheckUnknown": "watchtower-check-unknown",
    "WatchtowerProbeStale": "watchtower-probe-stale",
    "WatchtowerCheckStale": "watchtower-check-stale",
    "WatchtowerAbsent": "watchtower-absent",
}


def test_every_alert_has_severity_for_and_its_annotations() -> None:
    names = {rule["alert"] for rule in rules()}
    assert set(REQUIRED) <= names
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_links_to_a_runbook_of_its_own() -> None:
    for rule in rules():
        assert rule["annotations"]["runbook_url"] != RUNBOOK_BASE, rule["alert"]
        assert rule["labels"].get("runbook"), rule["alert"]


def test_runbook_links_and_labels_agree_with_the_routes() -> None:
    for rule in rules():
        runbook = rule["labels"].get("runbook")
        url = rule["annotations"]["runbook_url"]
        if runbook is None:  # no runbook of its own: the list of runbooks
            assert url == RUNBOOK_BASE, rule["alert"]
            assert not select(DEFAULT_ROUTES, {"alertname": rule["alert"]}), rule["alert"]
            continue
        assert url == f"{RUNBOOK_BASE}/{runbook}", rule["alert"]
        (route,) = select(DEFAULT_ROUTES, {"alertname": rule["alert"], **rule["labels"]})
        assert route.runbook == runbook, rule["alert"]
        if rule["alert"] in REQUIRED:
            assert REQUIRED[rule["alert"]] == runbook


def test_legacy_inserts_after_the_cutover_are_only_ever_suggested() -> None:
    (route,) = select(DEFAULT_ROUTES, {"alertname": "LegacyInsertsAfterCutover"})
    assert route.mode == "suggest"


def test_the_routes_file_is_the_default_table() -> None:
    data = yaml.safe_load((ALERTS / "routes.yml").read_text())
    assert parse_routes(data, source="alerts/routes.yml") == DEFAULT_ROUTES


def test_rules_read_only_watchtowers_own_metrics() -> None:
    documented = set(re.findall(r"^\| `(watchtower_[a-z_]+)` \|", METRICS_DOC.read_text(), re.M))
    for rule in rules():
        for name in re.findall(r"\bwatchtower_[a-z_]+", rule["expr"]):
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            assert family in documented, f"{rule['alert']} reads {name}, not in docs/metrics.md"


def test_routed_runbooks_exist_and_name_the_alerts_that_start_them() -> None:
    from watchtower.runbook.parser import catalog, default_dir, load

    runbooks, _ = load([default_dir()], catalog())
    assert alerting.unknown_runbooks(DEFAULT_ROUTES, runbooks) == []
    for rule in rules():
        chosen = select(DEFAULT_ROUTES, {"alertname": rule["alert"], **rule["labels"]})
        for route in chosen:
            triggers = {t.alertname for t in runbooks[route.runbook].triggers}
            assert rule["alert"] in triggers, f"{route.runbook} does not list {rule['alert']}"


def test_image_upload_slow_judges_the_one_latency_objective() -> None:
    """Both ImageUploadSlow rules judge WATCHTOWER_CUTOVER_MAX_P95_MS without repeating it: the
    probe's reads the objective_ms threshold the upload_success check publishes, the users' reads
    the check's slow_ratio, computed at that objective. Nothing in the file names 800 ms."""
    from prometheus_client import CollectorRegistry

    from watchtower.checks.base import CheckContext, Sources
    from watchtower.checks.runner import params_for
    from watchtower.checks.upload_success import UploadSuccess, judging
    from watchtower.config import Settings
    from watchtower.cutover.config import CutoverSettings
    from watchtower.metrics import Metrics
    from watchtower.sources import CloudWatchMetrics

    slow = {
        rule["labels"]["source"]: rule for rule in rules() if rule["alert"] == "ImageUploadSlow"
    }
    assert set(slow) == {"probe", "users"}
    for rule in (*slow.values(), *(r for r in rules() if r["alert"] == "ImageUploadErrors")):
        said = rule["expr"] + rule["annotations"]["summary"] + rule["annotations"]["description"]
        assert not re.search(r"800|0\.8\b|le=", said), rule["alert"]
    assert 'threshold="objective_ms"' in slow["probe"]["expr"]
    assert 'figure="slow_ratio"' in slow["users"]["expr"]

    # What the rule reads is what the check is handed from the cutover's setting, exported as
    # watchtower_check_threshold{check="upload_success", threshold="objective_ms"} whatever the
    # check concludes (here: no uploads, unknown).
    cutover = CutoverSettings.from_env({"WATCHTOWER_CUTOVER_MAX_P95_MS": "1000"})
    settings = judging(Settings(), cutover.max_p95_ms)
    check = UploadSuccess()
    ctx = CheckContext(
        settings=settings,
        sources=Sources(metrics=CloudWatchMetrics({})),  # never read: the metrics are given
        now=datetime(2026, 12, 7, tzinfo=UTC),
        params=params_for(check, settings),
        metrics={},
    )
    registry = CollectorRegistry()
    Metrics(registry).observe(check.evaluate(ctx))
    exported = registry.get_sample_value(
        "watchtower_check_threshold", {"check": "upload_success", "threshold": "objective_ms"}
    )
    assert exported == 1000
    # And at the default, with nothing handed to the check, it is still exported.
    plain = Settings()
    ctx = replace(ctx, settings=plain, params=params_for(check, plain))
    registry = CollectorRegistry()
    Metrics(registry).observe(check.evaluate(ctx))
    exported = registry.get_sample_value(
        "watchtower_check_threshold", {"check": "upload_success", "threshold": "objective_ms"}
    )
    assert exported == 800
