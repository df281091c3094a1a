"""`query` steps against real servers: PromQL on Prometheus, read-only SQL on PostgreSQL,
CloudWatch metrics and Logs on the moto server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import urllib3

from image_core.legacy import SCHEMA
from tests.watchtower.runbook.conftest import Aws, MakeHarness, write_runbook
from watchtower.runbook.model import ExecutionStatus, StepStatus
from watchtower.sandbox.servers import free_port

QUERIES = """
---
id: queries
title: Queries
params:
  job: {default: watchtower, pattern: '[a-z]+'}
  user: {default: u-1, pattern: '[A-Za-z0-9-]+'}
  label: {default: 'x"} or vector(1) or up{job="', pattern: '[a-z0-9"{}() =]+'}
  function: {default: "${settings.lambda_function}", pattern: '[a-z-]+'}
---
```step
id: promql
query: {promql: 'vector(3) + on() group_left sum(up{job="${params.job}"} or vector(0))'}
expect: "value == 3"
on_failure: continue
```

```step
id: promql-injection
query: {promql: 'up{job="${params.label}"}'}
on_failure: continue
```

```step
id: sql
query:
  sql: "SELECT count(*) AS n, max(user_id) AS who FROM gallery_images WHERE user_id = %(user)s"
with: {user: "${params.user}"}
expect: "value == 2 and rows[0].who == params.user"
on_failure: continue
```

```step
id: sql-write
query: {sql: "WITH gone AS (DELETE FROM gallery_images RETURNING id) SELECT count(*) FROM gone"}
on_failure: continue
```

```step
id: errors
query:
  cloudwatch:
    namespace: AWS/Lambda
    metric: Errors
    dimensions: {FunctionName: "${params.function}"}
    stat: Sum
    window: 900
    period: 60
expect: "value == 5 and count == 2"
on_failure: continue
```

```step
id: logs
query: {logs: {pattern: ERROR, window: 900, limit: 10}}
expect: "count == 2"
on_failure: continue
```
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must provide prometheus (scripts/install-system-packages)")
        pytest.skip("prometheus is not installed")
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib3.request("GET", f"{url}/-/ready", timeout=1, retries=False).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("prometheus did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_query_steps_against_real_servers(
    make_harness: MakeHarness,
    aws: Aws,
    prometheus: str,
    legacy_url: str,
    tmp_path: Path,
) -> None:
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for n, user in enumerate(["u-1", "u-1", "u-2"]):
            conn.execute(
                "INSERT INTO gallery_images (id, user_id, original_key, thumbnail_key, "
                "content_type, width, height, size_bytes, created_at) "
                "VALUES (%s, %s, 'o', 't', 'image/jpeg', 1, 1, 1, now())",
                (f"img-{n}", user),
            )
    aws.function({})
    h = make_harness(
        runbooks=write_runbook(tmp_path / "q", "queries", QUERIES).parent,
        prometheus_url=prometheus,
        legacy_database_url=legacy_url,
    )
    now = h.clock()
    for minutes, errors in ((3, 2.0), (6, 3.0)):
        aws.metric(
            "Errors",
            errors,
            namespace="AWS/Lambda",
            at=now - timedelta(minutes=minutes),
            FunctionName="image-api",
        )
    aws.logs(
        "/aws/lambda/image-api",
        [
            (now - timedelta(minutes=2), "ERROR boom"),
            (now - timedelta(minutes=1), "INFO fine"),
            (now - timedelta(minutes=1), "ERROR again"),
        ],
    )
    run_id = h.engine.start("queries", params={}, started_by="olive")
    h.run()
    steps = {s.step_id: s for s in h.get(run_id).steps}
    assert steps["promql"].status is StepStatus.SUCCEEDED, steps["promql"].error
    assert steps["promql"].inputs == {
        "promql": 'vector(3) + on() group_left sum(up{job="watchtower"} or vector(0))'
    }
    assert steps["promql"].outputs["value"] == 3.0
    # A parameter cannot change a query's shape: the value is refused, nothing is sent.
    assert steps["promql-injection"].status is StepStatus.FAILED
    assert "cannot go into a PromQL query" in steps["promql-injection"].error
    assert steps["sql"].status is StepStatus.SUCCEEDED, steps["sql"].error
    assert steps["sql"].outputs["rows"] == [{"n": 2, "who": "u-1"}]
    # The text passed validation (a WITH … SELECT), but the session is read-only.
    assert steps["sql-write"].status is StepStatus.FAILED
    assert "read-only transaction" in steps["sql-write"].error
    with psycopg.connect(legacy_url) as conn:
        assert conn.execute("SELECT count(*) FROM gallery_images").fetchone() == (3,)
    assert steps["errors"].status is StepStatus.SUCCEEDED, steps["errors"].error
    assert [p["value"] for p in steps["errors"].outputs["datapoints"]] == [3.0, 2.0]
    assert steps["logs"].status is StepStatus.SUCCEEDED, steps["logs"].error
    assert steps["logs"].outputs["messages"] == ["ERROR boom", "ERROR again"]
    assert h.status(run_id) is ExecutionStatus.SUCCEEDED


def test_a_query_without_its_source_fails_clearly(
    make_harness: MakeHarness, aws: Aws, tmp_path: Path
) -> None:
    aws.function({})
    h = make_harness(runbooks=write_runbook(tmp_path / "q", "queries", QUERIES).parent)
    run_id = h.engine.start("queries", params={}, started_by="olive")
    h.run()
    steps = {s.step_id: s for s in h.get(run_id).steps}
    assert steps["promql"].error == "Prometheus is not configured (WATCHTOWER_PROMETHEUS_URL)"
    assert "WATCHTOWER_LEGACY_DATABASE_URL" in steps["sql"].error
