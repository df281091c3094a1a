"""The cutover, for callers that have settings but no running Watchtower: a runbook action, the
command line, another process. Each call opens the store, does one thing, and closes it.

    preflight(settings, now=...)                       the dual-write monitoring report + gate
    record_preflight(settings, preflight, ...)         its decision in the audit log (override)
    open_window(settings, flipped_by=..., at=..., now=...)
    record_rollback(settings, by=..., at=..., reason=..., now=...)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from watchtower.config import Settings
from watchtower.cutover.config import CutoverSettings
from watchtower.cutover.errors import NoWindow
from watchtower.cutover.gate import Decision, Override
from watchtower.cutover.model import CloseReason, Window
from watchtower.cutover.ports import Adapters, EvidencePorts, PreflightPorts, RunbookAuditEvents
from watchtower.cutover.service import CutoverService, Preflight
from watchtower.cutover.store import CutoverStore

MakeClient = Callable[..., Any]  # (service, region=None) -> a boto3 client


@contextlib.contextmanager
def standalone(
    settings: Settings,
    *,
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Iterator[CutoverService]:
    """A CutoverService over the settings' database and AWS, closed on exit."""
    from watchtower import aws
    from watchtower.sources import CloudWatchMetrics, LambdaConfig, PostgresSql
    from watchtower.store import HistoryStore, engine_for

    make = client or functools.partial(aws.client, settings=settings)
    engine = engine_for(settings.database_url)
    try:
        history = HistoryStore(engine)
        history.create_schema()
        store = CutoverStore(engine)
        # CloudFront's metrics live in us-east-1, whatever the settings' region.
        metrics = CloudWatchMetrics(
            {r: make("cloudwatch", region=r) for r in {settings.region, "us-east-1"}}
        )
        legacy = PostgresSql(settings.legacy_database_url) if settings.legacy_database_url else None
        adapters = Adapters(settings, make_client=make)
        yield CutoverService(
            settings=settings,
            cutover=cutover or CutoverSettings.from_env(),
            store=store,
            evidence_ports=EvidencePorts(
                metrics=metrics,
                results=history,
                functions=LambdaConfig(make("lambda")),
                legacy_sql=legacy,
                alerts=history,
            ),
            preflight_ports=PreflightPorts(
                metrics=metrics,
                catalog=adapters.catalog,
                images=adapters.images,
                legacy_sql=legacy,
            ),
            results=history,
            runbook_events=RunbookAuditEvents(engine),
            adapters=adapters,
        )
    finally:
        engine.dispose()


def preflight(
    settings: Settings,
    *,
    now: datetime,
    days: int | None = None,
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Preflight:
    """The dual-write monitoring report over the last `days` days, and the gate's decision."""
    with standalone(settings, cutover=cutover, client=client) as service:
        return service.preflight(now=now, days=days)


def record_preflight(
    settings: Settings,
    report: Preflight,
    *,
    actor: str,
    now: datetime,
    override: Override | None = None,
    execution_id: str | None = None,
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Decision:
    with standalone(settings, cutover=cutover, client=client) as service:
        return service.record_preflight(
            report, actor=actor, now=now, override=override, execution_id=execution_id
        )


def open_window(
    settings: Settings,
    *,
    flipped_by: str,
    at: datetime,
    now: datetime,
    via: str = "runbook",
    execution_id: str | None = None,
    comment: str = "",
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Window:
    """Open the cutover window for the flag turned off at `at` (by a runbook run, or a person)."""
    with standalone(settings, cutover=cutover, client=client) as service:
        return service.open_window(
            flipped_by=flipped_by,
            at=at,
            now=now,
            via=via,
            execution_id=execution_id,
            comment=comment,
        )


def record_rollback(
    settings: Settings,
    *,
    by: str,
    at: datetime,
    reason: str,
    now: datetime,
    cutover: CutoverSettings | None = None,
    client: MakeClient | None = None,
) -> Window:
    """Close the open window as rolled back (dual-write turned on again at `at`)."""
    with standalone(settings, cutover=cutover, client=client) as service:
        current = service.store.open_window()
        if current is None:
            raise NoWindow("no cutover window is open")
        return service.close(
            current.id, reason=CloseReason.ROLLED_BACK, by=by, at=at, comment=reason, now=now
        )
