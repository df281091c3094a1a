"""What a probe is, the HTTP port it talks through, and the registry that finds probes by name.

A probe is one class in one module of this package, decorated with `@register`. It walks a path
of the image service the way a user would, over `ProbeContext.http` (a urllib3 `PoolManager` in
production, whatever a test hands in), times every step with `ProbeContext.clock` and judges the
walk into one `Result`. It never reads the real clock: the runner hands it `now` and `clock`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from urllib3 import exceptions as http_errors

from watchtower.config import Settings
from watchtower.model import Result, Status, StepResult
from watchtower.registry import Registry


class HttpResponse(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive, as urllib3's
    @property
    def data(self) -> bytes: ...


class Http(Protocol):
    """The slice of urllib3's `PoolManager` a probe uses: one request, its body read in full."""

    def request(self, method: str, url: str, **kw: Any) -> HttpResponse: ...


@dataclass(frozen=True, kw_only=True)
class ProbeContext:
    settings: Settings
    http: Http
    now: datetime  # when the run started: the result's observed_at
    clock: Callable[[], float]  # monotonic seconds (time.perf_counter), for step timing only
    params: Mapping[str, float] = field(default_factory=dict)  # overrides of Probe.defaults
    # The probe's bearer token, fetched (and refreshed) when called; None: it sends its user id
    # (WATCHTOWER_PROBE_USER) in X-User-Id, for an API that trusts that header.
    token: Callable[[], str] | None = None


class Probe:
    """Base of every probe: a name, its status-page row, defaults for its thresholds, a run."""

    name: ClassVar[str]
    title: ClassVar[str]
    component: ClassVar[str]  # the status-page row it belongs to
    defaults: ClassVar[dict[str, float]] = {}
    interval: ClassVar[int | None] = None  # seconds; None: settings.probe_interval

    def run(self, ctx: ProbeContext) -> Result:
        raise NotImplementedError

    def params(self, ctx: ProbeContext) -> dict[str, float]:
        return {**self.defaults, **ctx.params}

    def result(
        self,
        ctx: ProbeContext,
        status: Status,
        reason: str,
        *,
        steps: tuple[StepResult, ...] = (),
        figures: Mapping[str, float | None] | None = None,
        duration_seconds: float = 0.0,
    ) -> Result:
        return Result(
            name=self.name,
            kind="probe",
            status=status,
            reason=reason,
            observed_at=ctx.now,
            figures=dict(figures or {}),
            thresholds=self.params(ctx),
            steps=steps,
            duration_seconds=duration_seconds,
        )


def interval_for(probe: Probe, settings: Settings) -> int:
    return probe.interval if probe.interval is not None else settings.probe_interval


@dataclass(frozen=True, kw_only=True)
class TransportFailure:
    """Why a request got no HTTP answer at all, in words on-call reads."""

    reason: str
    unreachable: bool  # nothing answered: the request never reached the service
    ambiguous: bool  # the request went out and the answer was lost: it may have taken effect


def transport_failure(exc: Exception, *, url: str, timeout: float) -> TransportFailure:
    """Name a urllib3 (or socket) failure: connection refused, timed out, DNS, TLS, reset."""
    if isinstance(exc, http_errors.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # a PoolManager configured with retries wraps the last failure
    where = _origin(url)
    if isinstance(exc, http_errors.NameResolutionError):
        return TransportFailure(
            reason=f"cannot resolve the host of {where}", unreachable=True, ambiguous=False
        )
    if isinstance(exc, http_errors.NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError):
            what = "connection refused"
        else:
            what = f"cannot connect ({cause or exc})"
        return TransportFailure(reason=f"{what} ({where})", unreachable=True, ambiguous=False)
    if isinstance(exc, http_errors.ConnectTimeoutError):
        return TransportFailure(
            reason=f"connect timed out after {timeout:g} s ({where})",
            unreachable=True,
            ambiguous=False,
        )
    if isinstance(exc, http_errors.ReadTimeoutError | TimeoutError):
        return TransportFailure(
            reason=f"timed out: no answer within {timeout:g} s ({where})",
            unreachable=False,
            ambiguous=True,
        )
    if isinstance(exc, http_errors.SSLError):
        return TransportFailure(
            reason=f"TLS error ({where}): {exc}", unreachable=True, ambiguous=False
        )
    if isinstance(exc, http_errors.ProtocolError | ConnectionError):
        return TransportFailure(
            reason=f"connection dropped before the answer ({where}): {exc}",
            unreachable=False,
            ambiguous=True,
        )
    return TransportFailure(
        reason=f"{type(exc).__name__} ({where}): {exc}", unreachable=False, ambiguous=True
    )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else url


REGISTRY: Registry[Probe] = Registry("probe")
register = REGISTRY.register
registered = REGISTRY.registered
