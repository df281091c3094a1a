"""The metric families: documented exactly, fed from results, on an injectable registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from watchtower.metrics import Metrics
from watchtower.model import Result, Status, StepResult

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_docs_list_exactly_the_registered_families() -> None:
    metrics = Metrics(CollectorRegistry())
    registered = set()
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        registered.add(name)
    documented = set(re.findall(r"^\| `(watchtower_[a-z_]+)` \|", DOC.read_text(), re.M))
    assert documented == registered


def test_names_follow_prometheus_conventions() -> None:
    for family in Metrics(CollectorRegistry()).registry.collect():
        assert family.name.startswith("watchtower_")
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
        assert not family.name.endswith("_ms")


def _probe(status: Status, upload_seconds: float) -> Result:
    return Result(
        name="upload_get",
        kind="probe",
        status=status,
        reason="r",
        observed_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        duration_seconds=1.2,
        steps=(
            StepResult(name="upload", ok=True, seconds=upload_seconds),
            StepResult(name="get", ok=status is Status.OK, seconds=0.01),
        ),
    )


def test_probe_results_feed_success_steps_and_freshness() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.observe(_probe(Status.OK, 0.7))
    metrics.observe(_probe(Status.CRITICAL, 0.9))
    get = metrics.registry.get_sample_value
    assert get("watchtower_probe_success", {"probe": "upload_get"}) == 0
    assert get("watchtower_probe_runs_total", {"probe": "upload_get", "status": "ok"}) == 1
    assert get("watchtower_probe_runs_total", {"probe": "upload_get", "status": "critical"}) == 1
    # The 0.8 s bucket tells the 0.7 s upload from the 0.9 s one.
    le = {"probe": "upload_get", "step": "upload", "le": "0.8"}
    assert get("watchtower_probe_step_duration_seconds_bucket", le) == 1
    assert get("watchtower_probe_step_success", {"probe": "upload_get", "step": "get"}) == 0
    stamp = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
    labels = {"kind": "probe", "name": "upload_get"}
    assert get("watchtower_last_run_timestamp_seconds", labels) == stamp
    assert get("watchtower_last_success_timestamp_seconds", labels) == stamp


def test_check_status_is_one_hot_and_unknown_is_not_a_success() -> None:
    metrics = Metrics(CollectorRegistry())
    at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    metrics.observe(
        Result(
            name="upload_success",
            kind="check",
            status=Status.OK,
            reason="",
            observed_at=at,
            figures={"success_ratio": 1.0, "slow": None},
            thresholds={"min_success_ratio": 0.999},
        )
    )
    later = at.replace(minute=5)
    metrics.observe(
        Result(
            name="upload_success",
            kind="check",
            status=Status.UNKNOWN,
            reason="no datapoints",
            observed_at=later,
        )
    )
    get = metrics.registry.get_sample_value
    states = {
        s.value: get("watchtower_check_status", {"check": "upload_success", "status": s.value})
        for s in Status
    }
    assert states == {"ok": 0, "warning": 0, "critical": 0, "unknown": 1}
    labels = {"kind": "check", "name": "upload_success"}
    assert get("watchtower_last_run_timestamp_seconds", labels) == later.timestamp()
    assert get("watchtower_last_success_timestamp_seconds", labels) == at.timestamp()
    assert (
        get("watchtower_check_figure", {"check": "upload_success", "figure": "success_ratio"})
        == 1.0
    )
    assert get("watchtower_check_figure", {"check": "upload_success", "figure": "slow"}) is None
