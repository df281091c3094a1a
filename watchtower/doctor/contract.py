"""What Watchtower reads from the observed service, as the checks declare it. Pure.

Every metric a check asks for (its `metric_queries`, with the thresholds it will judge), every log
line and table it reads besides (its `reads`), grouped by what must exist: a metric by namespace,
name and dimension names (the values are the check's business), so that docs/metrics-contract.md and
`watchtower doctor` list the same things the checks read, and a test keeps the page equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchtower.checks import registry
from watchtower.checks.base import Check
from watchtower.config import Settings

# Metrics a healthy service does not publish at all: their absence is no gap.
SPARSE = frozenset(
    {
        ("AWS/DynamoDB", "ThrottledRequests"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
    }
)
OPT_IN = frozenset({("AWS/CloudFront", "CacheHitRate")})  # CloudFront's additional metrics


@dataclass(frozen=True, kw_only=True)
class Need:
    """One thing that must exist in the observed account, and the checks that read it."""

    kind: str  # metric, logs, lambda, sql
    name: str  # ImageService Requests{Operation,Traffic,Outcome}, logs:REPORT, ...
    namespace: str = ""
    metric: str = ""
    dimensions: tuple[str, ...] = ()  # dimension names, sorted
    region: str | None = None  # None: the settings' region
    checks: tuple[str, ...] = field(default=())

    @property
    def sparse(self) -> bool:
        return (self.namespace, self.metric) in SPARSE

    @property
    def opt_in(self) -> bool:
        return (self.namespace, self.metric) in OPT_IN


def metric_name(namespace: str, metric: str, dimensions: tuple[str, ...]) -> str:
    return f"{namespace} {metric}{{{','.join(dimensions)}}}"


def needs(settings: Settings, checks: Mapping[str, Check] | None = None) -> list[Need]:
    """Every need of every registered check, each once, with the checks that read it."""
    found: dict[tuple[str, str], Need] = {}
    readers: dict[tuple[str, str], list[str]] = {}
    for name, check in sorted((checks if checks is not None else registry()).items()):
        # The thresholds the checks will judge: a setting may add a metric (the upload latency
        # objective reads LatencyOver<objective>ms).
        params = {**check.defaults, **settings.check_overrides.get(name, {})}
        for query in check.metric_queries(settings, params):
            dims = tuple(sorted(k for k, _ in query.dimensions))
            # The metrics namespace is a setting: the contract names the image core's default.
            key = ("metric", metric_name(query.namespace, query.metric, dims))
            found.setdefault(
                key,
                Need(
                    kind="metric",
                    name=key[1],
                    namespace=query.namespace,
                    metric=query.metric,
                    dimensions=dims,
                    region=query.region,
                ),
            )
            readers.setdefault(key, []).append(name)
        for read in check.reads:
            kind = read.split(":", 1)[0]
            key = (kind, read)
            found.setdefault(key, Need(kind=kind, name=read))
            readers.setdefault(key, []).append(name)
    return [
        Need(**{**vars(need), "checks": tuple(dict.fromkeys(readers[key]))})
        for key, need in sorted(found.items())
    ]
