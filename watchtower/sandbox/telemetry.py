"""The telemetry simulator: what the moto server cannot produce, written where AWS would put it.

Everything written here is SIMULATED, and says so in the log (and, with WATCHTOWER_SANDBOX=true,
in Watchtower's UI). It follows real events wherever the sandbox has them:

* Lambda REPORT lines in /aws/lambda/<function>, text or JSON format: one per request an image API
  process really answered through the gateway, with its real duration. The first request a new
  process answers is a cold start (the process really is new); the scenario may make more of them
  cold. Init Duration, memory figures and the container a request ran in are simulated.
* DynamoDB ConsumedWriteCapacityUnits of the table: estimated from the uploads and deletes that
  really succeeded (moto counts no capacity). ThrottledRequests and Read/WriteThrottleEvents only
  as the scenario says: moto never throttles.
* CloudFront CacheHitRate and Requests (us-east-1, Region=Global): a simulated audience viewing
  thumbnails through the distribution; the hit rate is the scenario's.

`simulate` decides a tick's data from its inputs and `now`; `TelemetrySimulator` puts it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from watchtower.sandbox.gateway import Invocation, Invocations
from watchtower.sandbox.loop import Loop

log = logging.getLogger(__name__)

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
MEMORY_SIZE_MB = 1024
# Write capacity a successful request consumes, as the image core writes (items under 1 KB):
# an upload writes its Idempotency-Key claim, then record and claim in one transaction (2 units
# per item); a delete removes the record.
UPLOAD_WRITE_UNITS = 5.0
DELETE_WRITE_UNITS = 1.0
THROTTLED_OPERATIONS = ("PutItem", "TransactWriteItems", "Query")
SUMMARY_SECONDS = 60.0
SIMULATED = (
    "Lambda REPORT lines: one per real image API request; cold starts and Init Duration simulated",
    "DynamoDB ConsumedWriteCapacityUnits (estimated from real uploads and deletes) and throttling",
    "CloudFront CacheHitRate and Requests",
)
KEPT_GENERATIONS = 3  # a process being replaced still answers its last requests for a moment


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How the simulated part of the platform behaves; each scenario has one."""

    cache_hit_percent: tuple[float, float] = (91.0, 97.0)
    cloudfront_requests_per_second: float = 8.0
    throttled_per_second: float = 0.0
    cold_start_share: float = 0.0  # of the requests after a process's first, which is always cold
    init_ms: tuple[float, float] = (240.0, 650.0)


HEALTHY = Profile()


@dataclass
class Containers:
    """Which simulated Lambda container (log stream) served what; a new one starts cold."""

    streams: dict[int, str] = field(default_factory=dict)  # process generation -> current stream

    def place(
        self,
        invocation: Invocation,
        profile: Profile,
        rng: random.Random,
        now: datetime,
        version: str = "$LATEST",
    ) -> tuple[str, float | None]:
        """The log stream of `invocation`, and its Init Duration when it started a container.
        A container runs one version: a new version (the alias moved) starts new ones, cold."""
        generation = invocation.generation
        current = self.streams.get(generation)
        cold = (
            current is None
            or f"/[{version}]" not in current
            or rng.random() < profile.cold_start_share
        )
        if not cold and current is not None:
            return current, None
        self.streams[generation] = _stream_name(now, version)
        for gone in sorted(self.streams)[:-KEPT_GENERATIONS]:
            del self.streams[gone]
        return self.streams[generation], round(rng.uniform(*profile.init_ms), 2)


def _stream_name(now: datetime, version: str) -> str:
    """As Lambda names a container's log stream: the day, the version it runs, an id."""
    return f"{now:%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


def report_line(
    invocation: Invocation, *, init_ms: float | None, fmt: LogFormat, max_memory_mb: int
) -> str:
    """The REPORT line Lambda writes after an invocation, in the function's log format."""
    duration = round(invocation.duration_ms, 2)
    billed = max(1, math.ceil(invocation.duration_ms))
    if fmt == "json":
        metrics: dict[str, float] = {
            "durationMs": duration,
            "billedDurationMs": billed,
            "memorySizeMB": MEMORY_SIZE_MB,
            "maxMemoryUsedMB": max_memory_mb,
        }
        if init_ms is not None:
            metrics["initDurationMs"] = init_ms
        stamp = datetime.fromtimestamp(invocation.ended_at, UTC)
        return json.dumps(
            {
                "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "type": "platform.report",
                "record": {
                    "requestId": invocation.request_id,
                    "metrics": metrics,
                    "status": "success" if invocation.status < 500 else "error",
                },
            },
            separators=(",", ":"),
        )
    line = (
        f"REPORT RequestId: {invocation.request_id}\tDuration: {duration:.2f} ms\t"
        f"Billed Duration: {billed} ms\tMemory Size: {MEMORY_SIZE_MB} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    return line


def write_units(invocations: Iterable[Invocation]) -> float:
    """Write capacity the successful uploads and deletes among `invocations` consumed."""
    units = 0.0
    for i in invocations:
        if i.method == "POST" and i.path == "/images" and i.status == 201:
            units += UPLOAD_WRITE_UNITS
        elif i.method == "DELETE" and i.path.startswith("/images/") and i.status == 204:
            units += DELETE_WRITE_UNITS
    return units


@dataclass(frozen=True, kw_only=True)
class Tick:
    """One tick's simulated data: CloudWatch datapoints, and log events by stream."""

    metric_data: dict[str, list[dict[str, Any]]]  # namespace -> MetricData
    log_events: dict[str, list[dict[str, Any]]]  # log stream -> events, in time order
    cold_starts: int
    hit_percent: float
    cloudfront_requests: float
    throttled: float
    write_units: float


def simulate(
    profile: Profile,
    invocations: list[Invocation],
    *,
    now: datetime,
    seconds: float,
    table: str,
    distribution_id: str,
    containers: Containers,
    fmt: LogFormat,
    rng: random.Random,
    version: str = "$LATEST",
) -> Tick:
    """The data of the `seconds` that end at `now`."""
    streams: dict[str, list[dict[str, Any]]] = {}
    cold_starts = 0
    for invocation in sorted(invocations, key=lambda i: i.ended_at):
        stream, init_ms = containers.place(invocation, profile, rng, now, version)
        cold_starts += init_ms is not None
        line = report_line(
            invocation, init_ms=init_ms, fmt=fmt, max_memory_mb=rng.randint(150, 190)
        )
        streams.setdefault(stream, []).append(
            {"timestamp": int(invocation.ended_at * 1000), "message": line}
        )

    units = write_units(invocations)
    dynamodb: list[dict[str, Any]] = []
    table_dims = [{"Name": "TableName", "Value": table}]
    if units:  # DynamoDB publishes no datapoint for a period without writes
        dynamodb.append(_datum("ConsumedWriteCapacityUnits", units, table_dims, now, "Count"))
    throttled = round(profile.throttled_per_second * seconds)
    if throttled:
        share = max(1, throttled // len(THROTTLED_OPERATIONS))
        for operation in THROTTLED_OPERATIONS:
            dims = [*table_dims, {"Name": "Operation", "Value": operation}]
            dynamodb.append(_datum("ThrottledRequests", share, dims, now, "Count"))
        dynamodb.append(_datum("WriteThrottleEvents", throttled, table_dims, now, "Count"))
        dynamodb.append(_datum("ReadThrottleEvents", share, table_dims, now, "Count"))

    hit = round(rng.uniform(*profile.cache_hit_percent), 2)
    requests = round(profile.cloudfront_requests_per_second * seconds * rng.uniform(0.8, 1.2))
    cloudfront_dims = [
        {"Name": "DistributionId", "Value": distribution_id},
        {"Name": "Region", "Value": "Global"},
    ]
    cloudfront = [
        _datum("CacheHitRate", hit, cloudfront_dims, now, "Percent"),
        _datum("Requests", requests, cloudfront_dims, now, "None"),
    ]
    return Tick(
        metric_data={"AWS/DynamoDB": dynamodb, "AWS/CloudFront": cloudfront},
        log_events=streams,
        cold_starts=cold_starts,
        hit_percent=hit,
        cloudfront_requests=requests,
        throttled=throttled,
        write_units=units,
    )


def _datum(
    name: str, value: float, dimensions: list[dict[str, str]], at: datetime, unit: str
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": at,
        "Value": float(value),
        "Unit": unit,
    }


@dataclass
class _Summary:
    since: float
    invocations: int = 0
    cold_starts: int = 0
    cloudfront_requests: float = 0.0
    hit_percents: list[float] = field(default_factory=list)
    throttled: float = 0.0
    write_units: float = 0.0


class TelemetrySimulator:
    """Puts one tick of simulated telemetry into the moto server every `interval` seconds."""

    def __init__(
        self,
        *,
        cloudwatch: Any,
        logs: Any,
        invocations: Invocations,
        profile: Callable[[], Profile],
        table: str,
        distribution_id: str,
        log_group: str,
        log_format: LogFormat = "text",
        interval: float = 5.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        version: Callable[[], str] = lambda: "$LATEST",
    ) -> None:
        self._cloudwatch = cloudwatch
        # The version the image API runs (the flag follower's): its REPORT lines' log streams.
        self._version = version
        self._logs = logs
        self._invocations = invocations
        self._profile = profile
        self._table = table
        self._distribution_id = distribution_id
        self._log_group = log_group
        self._format = log_format
        self._rng = rng or random.Random()
        self._clock = clock
        self._containers = Containers()
        self._known_streams: set[str] = set()
        self._last: float | None = None
        self._summary: _Summary | None = None
        self.interval = interval
        self.loop = Loop("telemetry-simulator", interval, lambda: self.tick(self._clock()), log=log)

    def tick(self, now: float) -> Tick:
        seconds = self.interval if self._last is None else max(0.0, now - self._last)
        self._last = now
        at = datetime.fromtimestamp(now, UTC)
        invocations = self._invocations.drain()
        data = simulate(
            self._profile(),
            invocations,
            now=at,
            seconds=seconds,
            table=self._table,
            distribution_id=self._distribution_id,
            containers=self._containers,
            fmt=self._format,
            rng=self._rng,
            version=self._version(),
        )
        self._put(data)
        self._summarise(now, len(invocations), data)
        return data

    def _put(self, data: Tick) -> None:
        try:
            for namespace, metric_data in data.metric_data.items():
                if metric_data:
                    self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=metric_data)
            for stream, events in data.log_events.items():
                if stream not in self._known_streams:
                    self._logs.create_log_stream(logGroupName=self._log_group, logStreamName=stream)
                    self._known_streams.add(stream)
                try:
                    self._logs.put_log_events(
                        logGroupName=self._log_group, logStreamName=stream, logEvents=events
                    )
                except ClientError as exc:
                    # The stream is gone (a moto restart, the log group re-created): make it
                    # again on the next tick, as Lambda does for a new container.
                    if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                        self._known_streams.discard(stream)
                    raise
        except (ClientError, BotoCoreError) as exc:
            log.warning("telemetry simulator: could not put simulated telemetry: %s", exc)

    def _summarise(self, now: float, invocations: int, data: Tick) -> None:
        summary = self._summary or _Summary(since=now)
        summary.invocations += invocations
        summary.cold_starts += data.cold_starts
        summary.cloudfront_requests += data.cloudfront_requests
        summary.hit_percents.append(data.hit_percent)
        summary.throttled += data.throttled
        summary.write_units += data.write_units
        self._summary = summary
        if now - summary.since < SUMMARY_SECONDS:
            return
        hit = sum(summary.hit_percents) / len(summary.hit_percents)
        log.info(
            "SIMULATED telemetry (moto cannot produce it), last %.0f s: %d Lambda REPORT lines "
            "(%d cold starts) for real requests; DynamoDB %.0f write units (from real writes), "
            "%.0f throttled; CloudFront hit rate %.1f%% over %.0f requests",
            now - summary.since,
            summary.invocations,
            summary.cold_starts,
            summary.write_units,
            summary.throttled,
            hit,
            summary.cloudfront_requests,
        )
        self._summary = _Summary(since=now)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
