"""An open-loop step ramp over HTTP/1.1 keep-alive connections: offered rate, answers, latency.

Open loop, as Alertmanager sends: each request is due at a fixed time whatever happened to the
ones before it, so a slow server builds a queue instead of slowing the sender down. A request's
latency runs from the time it was due, not from when a connection was free to send it, so the
queueing a saturated server causes is counted (no coordinated omission). Steps follow each other
without a pause, as a storm of alerts grows: below the server's capacity nothing queues, so
each step stands alone; above it the queue a step leaves is the next step's to wait behind,
until an answer comes later than the timeout. The ramp stops offering at the end of the step in
which it saw the first error, then waits for every answer (each bounded by the timeout).

The client is one asyncio loop with a raw HTTP/1.1 parser: a few tens of microseconds a request,
so on loopback it can offer far more than a one-process Python server answers. It shares the
machine's cores with that server: the caller prints the CPU seconds of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.common import percentile

# A request's bytes for the i-th request of a ramp (a new fingerprint each time, say).
MakeRequest = Callable[[int], bytes]


@dataclass
class Step:
    """One offered rate, held for `seconds`, and what came back."""

    rate: float  # offered, requests per second
    seconds: float
    start: float = 0.0  # loop time the step began
    wall_start: float = 0.0  # the same, as time.time(): when its requests were due, by the clock
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # ms from due time; 2xx, due in step
    errors: Counter[str] = field(default_factory=Counter)  # "HTTP 503", "timeout", "connection"
    answered: int = 0  # 2xx answers that arrived during the step, whichever step they were due in

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """2xx answers per second that arrived while the step lasted."""
        return self.answered / self.seconds if self.seconds else 0.0

    def due(self, i: int) -> float:
        """time.time() at which the step's i-th request was due."""
        return self.wall_start + i / self.rate

    @property
    def kept_up(self) -> bool:
        """Every request due in the step answered 2xx, and answers came as fast as offered."""
        return self.failed == 0 and self.sent > 0 and self.throughput >= 0.95 * self.rate

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def describe(self) -> str:
        errors = ", ".join(f"{n} {kind}" for kind, n in self.errors.most_common()) or "none"
        return (
            f"{self.rate:6.0f}/s offered x {self.seconds:.1f} s: {self.sent:5d} sent, "
            f"{self.throughput:5.0f}/s answered 2xx; p50 {self.p(50):7.1f} ms, "
            f"p99 {self.p(99):7.1f} ms; errors: {errors}"
        )


@dataclass
class Ramp:
    steps: list[Step]
    stopped: str  # why the ramp ended

    @property
    def best(self) -> Step | None:
        """The highest-rate step served in full: every answer 2xx, at the offered rate."""
        kept = [s for s in self.steps if s.kept_up]
        return kept[-1] if kept else None

    @property
    def peak(self) -> Step | None:
        """The step with the most 2xx answers per second (the saturated throughput)."""
        return max(self.steps, key=lambda s: s.throughput, default=None)

    @property
    def first_error(self) -> Step | None:
        return next((s for s in self.steps if s.failed), None)

    def at_rate(self, rate: float) -> Step | None:
        return next((s for s in self.steps if abs(s.rate - rate) < 1e-6), None)


def rates(start: float, factor: float, count: int) -> list[float]:
    """A geometric ladder of offered rates, rounded to whole requests per second."""
    return [float(round(start * factor**n)) for n in range(count)]


def run_ramp(
    host: str,
    port: int,
    make_request: MakeRequest,
    *,
    ladder: list[float],
    step_seconds: float,
    timeout: float,
    budget_seconds: float,
    max_requests: int,
    max_connections: int = 256,
    expect: Callable[[int], bool] = lambda status: 200 <= status < 300,
) -> Ramp:
    """Offer each rate of `ladder` in turn until the first error, the budget or the request cap."""
    return asyncio.run(
        _ramp(
            host,
            port,
            make_request,
            ladder=ladder,
            step_seconds=step_seconds,
            timeout=timeout,
            budget_seconds=budget_seconds,
            max_requests=max_requests,
            max_connections=max_connections,
            expect=expect,
        )
    )


class _Pool:
    """Keep-alive connections to one server, opened as needed up to a cap."""

    def __init__(self, host: str, port: int, cap: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(cap)

    async def exchange(self, request: bytes) -> int:
        """Send one request, read its answer; the status code. Raises on a broken connection."""
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            keep = False
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value.strip().lower() == "close":
                        close = True
                if length:
                    await reader.readexactly(length)
                keep = not close
                return status
            finally:
                if keep:
                    self.idle.append(conn)
                else:
                    writer.close()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _ramp(
    host: str,
    port: int,
    make_request: MakeRequest,
    *,
    ladder: list[float],
    step_seconds: float,
    timeout: float,
    budget_seconds: float,
    max_requests: int,
    max_connections: int,
    expect: Callable[[int], bool],
) -> Ramp:
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port, max_connections)
    deadline = loop.time() + budget_seconds
    steps: list[Step] = []
    answers: list[float] = []  # loop times of 2xx answers
    tasks: list[asyncio.Task[None]] = []
    total = 0
    stopped = f"the last rate of the ladder ({ladder[-1]:.0f}/s)"

    async def one(step: Step, request: bytes, due: float) -> None:
        try:
            async with asyncio.timeout_at(due + timeout):
                status = await pool.exchange(request)
        except TimeoutError:
            step.errors["timeout"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            step.errors["connection"] += 1
        else:
            if expect(status):
                answered = loop.time()
                step.latencies.append((answered - due) * 1000)
                answers.append(answered)
            else:
                step.errors[f"HTTP {status}"] += 1

    try:
        start = loop.time() + 0.01
        to_wall = time.time() - loop.time()
        for rate in ladder:
            # Each step must fit the budget with its answers' timeout, or it is not offered.
            if start + step_seconds + timeout > deadline:
                stopped = f"the time budget ({budget_seconds:.0f} s)"
                break
            count = min(int(rate * step_seconds), max_requests - total)
            if count <= 0:
                stopped = f"the request cap ({max_requests:,})"
                break
            step = Step(rate=rate, seconds=count / rate, start=start, wall_start=start + to_wall)
            steps.append(step)
            for i in range(count):
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0.001:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(step, make_request(total + i), due)))
                step.sent += 1
            total += count
            start += step.seconds
            await asyncio.sleep(max(0.0, start - loop.time()))
            if any(s.failed for s in steps):
                stopped = "the first error"
                break
        await asyncio.gather(*tasks)
        if stopped != "the first error" and any(s.failed for s in steps):
            stopped += ", after the first error (seen late: a timeout shows at its end)"
    finally:
        for task in tasks:
            task.cancel()
        pool.close()
        # Let closed transports finish before the loop goes away.
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
    for step in steps:
        end = step.start + step.seconds
        step.answered = sum(1 for t in answers if step.start <= t < end)
    return Ramp(steps=steps, stopped=stopped)
