"""Every Prometheus metric family Watchtower exports, in one place, on an injectable registry.

Names follow Prometheus conventions (base units, `_seconds`, `_total`, `_ratio`). The list is
documented in docs/metrics.md, and a test keeps that page and this registry equal.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from watchtower.model import Result, Status

# Resolve the 800 ms upload objective: a bucket boundary sits on it.
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.probe_success = Gauge(
            "watchtower_probe_success",
            "1 when the probe's last run passed every step, else 0.",
            ["probe"],
            registry=r,
        )
        self.probe_runs = Counter(
            "watchtower_probe_runs_total",
            "Probe runs, by resulting status (retries included).",
            ["probe", "status"],
            registry=r,
        )
        self.probe_duration = Histogram(
            "watchtower_probe_duration_seconds",
            "Wall time of a whole probe run.",
            ["probe"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.probe_step_duration = Histogram(
            "watchtower_probe_step_duration_seconds",
            "Wall time of one probe step.",
            ["probe", "step"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.probe_step_success = Gauge(
            "watchtower_probe_step_success",
            "1 when the step passed in the probe's last run.",
            ["probe", "step"],
            registry=r,
        )
        self.check_status = Gauge(
            "watchtower_check_status",
            "1 for the check's current status (ok, warning, critical, unknown), 0 for the others.",
            ["check", "status"],
            registry=r,
        )
        self.check_figure = Gauge(
            "watchtower_check_figure",
            "A figure the check read in its last run.",
            ["check", "figure"],
            registry=r,
        )
        self.check_threshold = Gauge(
            "watchtower_check_threshold",
            "A threshold the check judged with.",
            ["check", "threshold"],
            registry=r,
        )
        self.check_duration = Gauge(
            "watchtower_check_duration_seconds",
            "Time the check's last judgement took.",
            ["check"],
            registry=r,
        )
        self.last_run = Gauge(
            "watchtower_last_run_timestamp_seconds",
            "When the probe or check last produced a result (any status).",
            ["kind", "name"],
            registry=r,
        )
        self.last_success = Gauge(
            "watchtower_last_success_timestamp_seconds",
            "When the probe last passed, or the check last read its source (status not unknown).",
            ["kind", "name"],
            registry=r,
        )
        self.interval = Gauge(
            "watchtower_interval_seconds",
            "How often the probe or check is scheduled to run.",
            ["kind", "name"],
            registry=r,
        )
        self.aws_api_calls = Counter(
            "watchtower_aws_api_calls_total",
            "AWS API calls made by checks, by API.",
            ["api"],
            registry=r,
        )
        self.signins = Counter(
            "watchtower_signins_total",
            "Password sign-ins (login form, basic auth), by how and outcome (ok, failed, "
            "throttled).",
            ["via", "outcome"],
            registry=r,
        )
        self.alert_notifications = Counter(
            "watchtower_alert_notifications_total",
            "Alertmanager webhook calls, by outcome (accepted, unauthenticated, forbidden, "
            "too_large, malformed, unavailable, failed).",
            ["outcome"],
            registry=r,
        )
        self.alerts_still_firing = Counter(
            "watchtower_alerts_still_firing_total",
            "Firing deliveries of an alert episode whose runbook run had already ended, by "
            "runbook (the run did not clear the alert, or not yet).",
            ["runbook"],
            registry=r,
        )
        self.job_runs = Counter(
            "watchtower_scheduler_job_runs_total",
            "Scheduled job firings: ran, skipped (another replica holds this interval) or failed.",
            ["job", "outcome"],
            registry=r,
        )

    def observe(self, result: Result) -> None:
        kind, name = result.kind, result.name
        stamp = result.observed_at.timestamp()
        self.last_run.labels(kind, name).set(stamp)
        if kind == "probe":
            passed = result.status in (Status.OK, Status.WARNING)
            self.probe_success.labels(name).set(1 if passed else 0)
            self.probe_runs.labels(name, result.status.value).inc()
            self.probe_duration.labels(name).observe(result.duration_seconds)
            for step in result.steps:
                self.probe_step_duration.labels(name, step.name).observe(step.seconds)
                self.probe_step_success.labels(name, step.name).set(1 if step.ok else 0)
            if passed:
                self.last_success.labels(kind, name).set(stamp)
            return
        for status in Status:
            self.check_status.labels(name, status.value).set(1 if status is result.status else 0)
        for figure, value in result.figures.items():
            if value is not None:
                self.check_figure.labels(name, figure).set(value)
        for threshold, value in result.thresholds.items():
            self.check_threshold.labels(name, threshold).set(value)
        self.check_duration.labels(name).set(result.duration_seconds)
        if result.status is not Status.UNKNOWN:
            self.last_success.labels(kind, name).set(stamp)
