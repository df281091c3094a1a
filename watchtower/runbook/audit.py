"""The runbook store's audit log: only ever inserted into (this module has no method that
changes or deletes an entry), read oldest first.

A mixin of `RunbookStore` (watchtower.runbook.store), on the same engine; `audit_rows` lets the
store write a run's first entries in the transaction that creates it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, insert, select

from watchtower.runbook.model import AuditEntry
from watchtower.runbook.tables import MIN_TIME, audit_log, guard, utc


def audit_rows(entries: Iterable[AuditEntry]) -> builtins.list[dict[str, Any]]:
    return [
        {
            "at": e.at,
            "execution_id": e.execution_id,
            "runbook_id": e.runbook_id,
            "actor": e.actor,
            "action": e.action,
            "step_id": e.step_id,
            "comment": e.comment,
        }
        for e in entries
    ]


class AuditLog:
    engine: Engine

    def audit(self, *entries: AuditEntry) -> None:
        """Append entries, in one transaction."""
        if entries:
            with guard("append to the audit log"), self.engine.begin() as conn:
                conn.execute(insert(audit_log), audit_rows(entries))

    def audit_entries(
        self, execution_id: str | None = None, *, limit: int = 500
    ) -> builtins.list[AuditEntry]:
        """Oldest first."""
        query = select(audit_log).order_by(audit_log.c.id)
        if execution_id is not None:
            query = query.where(audit_log.c.execution_id == execution_id)
        with guard("read the audit log"), self.engine.connect() as conn:
            return [
                AuditEntry(
                    at=utc(r.at) or MIN_TIME,
                    execution_id=r.execution_id,
                    runbook_id=r.runbook_id,
                    actor=r.actor,
                    action=r.action,
                    step_id=r.step_id,
                    comment=r.comment,
                )
                for r in conn.execute(query.limit(limit))
            ]
