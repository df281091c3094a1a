"""The image core's CloudWatch metrics: what is recorded, and the two ways it is published.

Every metric is in one namespace (IMAGE_METRICS_NAMESPACE, default `ImageService`) and listed in
`docs/image-core-metrics.md`. Latency objectives are published as counts of requests over the
thresholds of IMAGE_LATENCY_THRESHOLDS_MS (default 250, 500, 800, 1000 ms) beside the
Sum/SampleCount of `Latency`, so "share of uploads slower than 800 ms" is a ratio of two Sums: it
aggregates over any window and needs no percentile statistic.

On Lambda the metrics are Embedded Metric Format log lines (CloudWatch extracts them; no API call
on the request path). As a server they are aggregated in memory into statistic sets and sent with
batched PutMetricData every few seconds.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from image_core.config import LATENCY_THRESHOLDS_MS

log = logging.getLogger(__name__)

Traffic = Literal["user", "synthetic"]
Outcome = Literal["success", "client_error", "server_error"]


@dataclass(frozen=True)
class Datum:
    name: str
    value: float
    unit: str
    dimensions: tuple[tuple[str, str], ...] = ()


class MetricSink(Protocol):
    def publish(self, data: list[Datum]) -> None:
        """Take the data points of one event (they are sent later or now)."""


class Telemetry:
    """Turns what happened into data points. Every metric name is written here and nowhere else."""

    def __init__(
        self, sink: MetricSink, *, latency_thresholds_ms: tuple[int, ...] = LATENCY_THRESHOLDS_MS
    ) -> None:
        self._sink = sink
        # LatencyOver<N>ms for each (IMAGE_LATENCY_THRESHOLDS_MS): the names Watchtower reads
        self._over = tuple((t, f"LatencyOver{t}ms") for t in latency_thresholds_ms)

    def request(
        self,
        *,
        operation: str,
        traffic: Traffic,
        outcome: Outcome,
        seconds: float,
        reason: str | None = None,
    ) -> None:
        op = (("Operation", operation), ("Traffic", traffic))
        ms = seconds * 1000.0
        data = [
            Datum("Requests", 1, "Count", (*op, ("Outcome", outcome))),
            Datum("Latency", ms, "Milliseconds", op),
        ]
        data += [Datum(name, 1.0 if ms > t else 0.0, "Count", op) for t, name in self._over]
        if reason is not None:
            data.append(Datum("Errors", 1, "Count", (("Operation", operation), ("Reason", reason))))
        self._sink.publish(data)

    def dual_write(self, *, ok: bool, reason: str | None = None) -> None:
        data = [Datum("DualWrites", 1, "Count", (("Outcome", "success" if ok else "failure"),))]
        if not ok:
            data.append(Datum("DualWriteFailures", 1, "Count", (("Reason", reason or "unknown"),)))
        self._sink.publish(data)

    def cache(self, event: str) -> None:
        self._sink.publish([Datum("CacheEvents", 1, "Count", (("Event", event),))])

    def cold_start(self) -> None:
        self._sink.publish([Datum("ColdStarts", 1, "Count")])

    def orphan_cleanup_failed(self) -> None:
        self._sink.publish([Datum("OrphanCleanupFailures", 1, "Count")])


class NullSink:
    def publish(self, data: list[Datum]) -> None:
        pass


class EmfSink:
    """Writes each event as Embedded Metric Format JSON lines (one per dimension set)."""

    def __init__(
        self,
        namespace: str,
        service: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()

    def publish(self, data: list[Datum]) -> None:
        groups: dict[tuple[tuple[str, str], ...], list[Datum]] = {}
        for d in data:
            groups.setdefault(d.dimensions, []).append(d)
        lines = []
        for dims, points in groups.items():
            doc: dict[str, Any] = {
                "_aws": {
                    "Timestamp": int(self._clock() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self._namespace,
                            "Dimensions": [[k for k, _ in dims]],
                            "Metrics": [{"Name": p.name, "Unit": p.unit} for p in points],
                        }
                    ],
                },
                "service": self._service,
                **dict(dims),
            }
            for p in points:
                doc.setdefault(p.name, [])
                doc[p.name].append(p.value)
            lines.append(json.dumps(doc, separators=(",", ":")))
        with self._lock:
            stream = self._stream or sys.stdout
            stream.write("\n".join(lines) + "\n")
            stream.flush()


@dataclass
class _Stats:
    unit: str
    sum: float = 0.0
    count: int = 0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    def add(self, value: float) -> None:
        self.sum += value
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


class CloudWatchSink:
    """Aggregates into statistic sets and sends them with batched PutMetricData.

    Call `start()` to flush every `interval` seconds on a daemon thread and `close()` at exit; a
    failed flush is logged and its data dropped, never retried forever.
    """

    BATCH = 500  # PutMetricData takes up to 1000 metrics and 1 MB per call

    def __init__(
        self,
        client: Any,
        namespace: str,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._interval = interval
        self._clock = clock
        self._pending: dict[tuple[str, tuple[tuple[str, str], ...]], _Stats] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.calls = 0

    def publish(self, data: list[Datum]) -> None:
        with self._lock:
            for d in data:
                stats = self._pending.get((d.name, d.dimensions))
                if stats is None:
                    stats = self._pending[(d.name, d.dimensions)] = _Stats(d.unit)
                stats.add(d.value)

    def flush(self) -> int:
        """Send what is pending now; returns the number of PutMetricData calls made."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        timestamp = self._clock()
        metric_data = [
            {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                "Timestamp": timestamp,
                "Unit": s.unit,
                "StatisticValues": {
                    "SampleCount": s.count,
                    "Sum": s.sum,
                    "Minimum": s.minimum,
                    "Maximum": s.maximum,
                },
            }
            for (name, dims), s in pending.items()
        ]
        calls = 0
        for start in range(0, len(metric_data), self.BATCH):
            try:
                self._client.put_metric_data(
                    Namespace=self._namespace, MetricData=metric_data[start : start + self.BATCH]
                )
                calls += 1
            except (ClientError, BotoCoreError) as exc:
                log.warning(
                    "PutMetricData to namespace %r failed, %d metrics dropped: %s",
                    self._namespace,
                    len(metric_data[start : start + self.BATCH]),
                    exc,
                )
        self.calls += calls
        return calls

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
