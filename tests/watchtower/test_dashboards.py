"""The Grafana dashboards: importable, provisionable, and every query names a metric we export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchtower.checks import registry as checks
from watchtower.metrics import Metrics
from watchtower.probes import registry as probes
from watchtower.probes.upload_get import STEPS

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# PromQL words that look like metric names but are not.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "atan2", "inf", "nan", "Inf", "NaN"}


def exported() -> set[str]:
    """Every series name Watchtower's registry exports, suffixes included."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"),
            "info": ("_info",),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    expr = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", expr):
        name, call = match.groups()
        if call is None and name not in _KEYWORDS:
            names.add(name)
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression: panel targets, and the metric of each label_values() variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
            assert found, (
                f"variable {variable['name']}: {query!r} is not label_values(metric, label)"
            )
            yield found.group(1)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_are_dashboards_for_probes_checks_and_the_cutover() -> None:
    assert {p.stem for p in FILES} >= {
        "watchtower-probes",
        "watchtower-checks",
        "watchtower-cutover",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_query_names_an_exported_metric(path: Path) -> None:
    known = exported()
    found = [(q, metric_names(q)) for q in queries(load(path))]
    assert found, "a dashboard without queries"
    for query, names in found:
        assert names, f"no metric in {query!r}"
        assert names <= known, f"{sorted(names - known)} not exported by Watchtower, in {query!r}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_check_probe_and_step_named_exists(path: Path) -> None:
    names = {"check": set(checks()), "probe": set(probes()), "step": {*STEPS, "cleanup"}}
    for query in queries(load(path)):
        for label, op, value in re.findall(r'\b(check|probe|step)\s*(=~|=)\s*"([^"]*)"', query):
            if "$" in value:
                continue  # a template variable, filled from the metric's own label values
            values = value.split("|") if op == "=~" else [value]
            assert set(values) <= names[label], f"{label} {values} in {query!r}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_importable_and_provisionable(path: Path) -> None:
    dashboard = load(path)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert "id" not in dashboard or dashboard["id"] is None  # an id would clash on import
    (source,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    assert [i["pluginId"] for i in dashboard["__inputs"]] == ["prometheus"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_uids_are_unique_and_the_provisioning_examples_parse() -> None:
    uids = [load(p)["uid"] for p in FILES]
    assert len(uids) == len(set(uids))
    provider = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
    sources = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"


def test_the_metric_name_parser() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, step) (rate(watchtower_probe_step_duration_seconds"
        '_bucket{probe=~"$probe", le="0.8"}[$__rate_interval]))) / on (probe) group_left(step) '
        "watchtower_interval_seconds offset 5m > bool 1e3 and time() - "
        'watchtower_last_run_timestamp_seconds{kind="probe"}'
    )
    assert metric_names(expr) == {
        "watchtower_probe_step_duration_seconds_bucket",
        "watchtower_interval_seconds",
        "watchtower_last_run_timestamp_seconds",
    }
    assert metric_names("sum(rate(watchtower_nope_total[5m]))") - exported() == {
        "watchtower_nope_total"
    }
    assert "watchtower_probe_runs_total" in exported()
    assert "watchtower_probe_runs" not in exported()  # a counter is exported with _total only
