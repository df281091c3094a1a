"""Issue 14: a runbook's SQL names the legacy table as `{legacy_table}`, composed from
WATCHTOWER_LEGACY_TABLE as a quoted identifier (here schema-qualified and mixed case)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from image_core.app import Components
from tests.watchtower.cutover.test_legacy_table import TABLE, legacy_schema, upload
from tests.watchtower.runbook.conftest import MakeHarness, write_runbook
from watchtower.runbook.model import StepStatus

__all__ = ["legacy_schema"]  # the fixture, shared with the cutover's test

RUNBOOK = """
---
id: legacy-count
title: Count the legacy rows
---
```step
id: count
query: {sql: "SELECT count(*) AS n FROM {legacy_table} WHERE user_id = %(user)s"}
with: {user: alice}
expect: "value == 1"
```
"""


def test_runbook_sql_names_the_configured_table_as_an_identifier(
    make_components: Callable[..., Components],
    make_harness: MakeHarness,
    legacy_schema: str,
    tmp_path: Path,
) -> None:
    components = make_components(
        dual_write=True, legacy_database_url=legacy_schema, legacy_table=TABLE
    )
    upload(components)
    h = make_harness(
        runbooks=write_runbook(tmp_path / "r", "legacy-count", RUNBOOK).parent,
        legacy_database_url=legacy_schema,
        legacy_table=TABLE,
    )
    run_id = h.engine.start("legacy-count", params={}, started_by="olive")
    h.run()
    step = h.get(run_id).steps[0]
    assert step.status is StepStatus.SUCCEEDED, step.error
    assert step.outputs["rows"] == [{"n": 1}]
