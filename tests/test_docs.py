"""The documents that must stay true to the code: the configuration reference, the IAM policies,
the lock files, the dependency audit's verdicts, and the links between the documents."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
AWS_SERVICES = ("cloudwatch", "logs", "lambda", "cloudfront", "dynamodb", "s3", "ce")
# Where IAM authorises an API call under another action's name.
IAM_NAMES = {
    ("s3", "HeadBucket"): ["s3:ListBucket"],
    ("s3", "HeadObject"): ["s3:GetObject"],
    ("s3", "DeleteObjects"): ["s3:DeleteObject"],
    ("dynamodb", "TransactWriteItems"): [],  # authorised as its parts, found on their own
}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


# -- configuration reference ---------------------------------------------------------------------


def test_configuration_reference_is_what_the_settings_render_now() -> None:
    docs = _script("configuration_docs")
    committed = docs.TARGET.read_text(encoding="utf-8")
    assert committed == docs.render(), (
        "docs/configuration.md differs from the settings objects: run `make docs`"
    )


def test_configuration_reference_lists_every_variable_once() -> None:
    from image_core import config as image_config
    from watchtower import config as watchtower_config
    from watchtower.checks import registry
    from watchtower.cutover import config as cutover_config

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.M)
    for module in (watchtower_config, cutover_config, image_config):
        for variable in module.variables():
            assert variable in rows, variable
    # Once per table; only the boto3 endpoint override belongs to both packages.
    assert {r for r in rows if rows.count(r) > 1} == {"AWS_ENDPOINT_URL"}
    for name in registry():
        assert f"WATCHTOWER_CHECK_{name.upper()}_INTERVAL" in rows


# -- IAM policies -------------------------------------------------------------------------------


def _policies() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    assert blocks, "docs/deployment.md has no JSON policy"
    policies = [json.loads(block) for block in blocks]
    for policy in policies:
        assert policy["Version"] == "2012-10-17"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and statement["Sid"] and statement["Resource"]
            assert not [a for a in statement["Action"] if "*" in a], statement["Sid"]
    return policies


def _granted(prefix: str) -> set[str]:
    return {
        action
        for policy in _policies()
        for statement in policy["Statement"]
        if statement["Sid"].startswith(prefix)
        for action in statement["Action"]
    }


def _api_calls(files: Iterable[Path]) -> set[str]:
    """The IAM actions behind every AWS API call these files make, found in their source: boto3
    methods called or named (`.get_metric_data(`, `"list_metrics"`) and the operations actions
    declare or call (`operation="UpdateTable"`, `call(client, "UpdateTable", ...)`)."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in files)
    snake = set(re.findall(r"\.([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\(", text))
    snake |= set(re.findall(r"\"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\"", text))
    camel = set(re.findall(r"operation=\"([A-Z]\w+)\"", text))
    camel |= set(re.findall(r"call\(\s*[^,]+,\s*\"([A-Z]\w+)\"", text))
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="unused", aws_secret_access_key="unused"
    )
    actions: set[str] = set()
    for service in AWS_SERVICES:
        mapping = session.client(service).meta.method_to_api_mapping
        operations = {mapping[n] for n in snake if n in mapping}
        operations |= {c for c in camel if c in mapping.values()}
        for operation in operations:
            actions.update(IAM_NAMES.get((service, operation), [f"{service}:{operation}"]))
    return actions


def test_watchtower_policies_grant_exactly_the_calls_the_code_makes() -> None:
    files = [p for p in (ROOT / "watchtower").rglob("*.py") if "sandbox" not in p.parts]
    used = _api_calls(files)
    granted = _granted("Watchtower")
    assert used - granted == set(), "calls the policies in docs/deployment.md do not grant"
    assert granted - used == set(), "grants in docs/deployment.md no code needs"
    # The few every deployment relies on, named so a refactor cannot lose them silently.
    assert {
        "cloudwatch:GetMetricData",
        "logs:FilterLogEvents",
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionConfiguration",
        "cloudfront:CreateInvalidation",
        "dynamodb:UpdateTable",
        "ce:GetCostAndUsage",
    } <= granted


def test_image_core_policies_cover_its_calls_and_keep_set_up_apart() -> None:
    used = _api_calls((ROOT / "image_core").glob("*.py"))
    runtime, bootstrap = (
        _granted("ImageCore") - _granted("ImageCoreBootstrap"),
        _granted("ImageCoreBootstrap"),
    )
    assert used - runtime - bootstrap == set()
    assert {
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "cloudwatch:PutMetricData",
    } <= runtime
    assert not {a for a in runtime if re.search(r":(Create|UpdateTimeToLive)", a)}, runtime


# -- lock files ---------------------------------------------------------------------------------


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """package -> (version, number of hashes), from a `--generate-hashes` lock."""
    pins: dict[str, tuple[str, int]] = {}
    name = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][\w.\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            name = canonicalize_name(match.group(1))
            pins[name] = (match.group(2), 0)
        elif name and "--hash=sha256:" in line:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.lock", {"server", "legacy"}), ("requirements-dev.lock", None)],
)
def test_lock_pins_every_declared_dependency_with_hashes(
    lock: str, extras: set[str] | None
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    wanted = [*project["dependencies"]]
    for extra in sorted(optional if extras is None else extras):
        wanted += optional[extra]
    pins = _pins(ROOT / lock)
    assert pins, lock
    for spec in map(Requirement, wanted):
        if spec.marker is not None and not spec.marker.evaluate({"python_version": "3.11"}):
            continue
        name = canonicalize_name(spec.name)
        assert name in pins, f"{lock} lacks {spec.name}: run `make lock`"
        version, _ = pins[name]
        assert spec.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {spec}: run `make lock`"
        )
    unhashed = [n for n, (_, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"pins without hashes in {lock}: {unhashed}"


def test_the_image_installs_the_runtime_lock_and_not_the_dev_one() -> None:
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert "gunicorn" in runtime and "psycopg" in runtime
    for tool in ("pytest", "moto", "ruff", "mypy", "pip-audit", "uv"):
        assert tool not in runtime and tool in dev, tool
    # One version of each package on both sides: tests run what the image ships.
    shared = set(runtime) & set(dev)
    assert {n: runtime[n][0] for n in shared} == {n: dev[n][0] for n in shared}


# -- the dependency audit -------------------------------------------------------------------------


def _fake_pip_audit(monkeypatch: pytest.MonkeyPatch, report: dict[str, Any] | None) -> None:
    audit = sys.modules.get("audit_dependencies") or _script("audit_dependencies")
    if report is None:  # pip-audit that fails before it reports (a network error)
        code = "import sys; print('ConnectionError: no route', file=sys.stderr); sys.exit(1)"
    else:
        code = f"print({json.dumps(json.dumps(report))})"
    monkeypatch.setattr(audit, "pip_audit", lambda: [sys.executable, "-c", code])


def _run_audit(*argv: str) -> int:
    audit = sys.modules["audit_dependencies"]
    return int(audit.main([*argv, str(ROOT / "requirements.lock")]))


def test_audit_fails_on_a_known_vulnerability(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    vuln = {"id": "GHSA-xxxx", "fix_versions": ["9.9"]}
    _fake_pip_audit(
        monkeypatch,
        {"dependencies": [{"name": "flask", "version": "3.1.3", "vulns": [vuln]}], "fixes": []},
    )
    assert _run_audit() == 1
    out = capsys.readouterr().out
    assert "VULNERABLE flask==3.1.3: GHSA-xxxx (fixed in 9.9)" in out
    assert "dependency audit: FAILED" in out


def test_audit_passes_only_when_every_package_was_looked_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_pip_audit(
        monkeypatch, {"dependencies": [{"name": "flask", "version": "3.1.3", "vulns": []}]}
    )
    assert _run_audit("--strict") == 0
    assert "dependency audit: passed" in capsys.readouterr().out


@pytest.mark.parametrize("reachable", [True, False])
def test_audit_says_not_done_when_the_service_cannot_be_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], reachable: bool
) -> None:
    skipped = {"name": "flask", "skip_reason": "Dependency not found on PyPI: flask (3.1.3)"}
    _fake_pip_audit(monkeypatch, {"dependencies": [skipped]} if reachable else None)
    assert _run_audit() == 0
    out = capsys.readouterr().out
    assert "dependency audit: NOT DONE" in out
    assert ("not audited (Dependency not found on PyPI): flask" in out) is reachable
    assert ("NOT AUDITED: pip-audit failed: ConnectionError: no route" in out) is not reachable
    assert _run_audit("--strict") == 1


def test_audit_is_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    audit = sys.modules.get("audit_dependencies") or _script("audit_dependencies")
    monkeypatch.setattr(
        audit, "pip_audit", lambda: [sys.executable, "-c", "import time; time.sleep(30)"]
    )
    outcome = audit.audit(ROOT / "requirements.lock", timeout=0.5)
    assert outcome.failure is not None and "did not finish within" in outcome.failure


# -- links between the documents ----------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "README.md",
        "docs/deployment.md",
        "docs/monitoring.md",
        "docs/troubleshooting.md",
        "docs/handoff.md",
    ],
)
def test_relative_links_point_at_files_that_exist(document: str) -> None:
    path = ROOT / document
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{document} links to missing {target}"


# -- the README's architecture diagram ------------------------------------------------------------


def _diagram_node(node: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    diagram = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert diagram, "README.md has no Mermaid diagram"
    label = re.search(rf"^\s*{node}\[\"{node}<br/>(.*?)\"\]", diagram.group(1), re.M)
    assert label, f"no node {node!r} in the diagram"
    return re.findall(r"[a-z][a-z0-9_]+", label.group(1).replace("<br/>", " "))


def test_the_diagram_names_every_registered_probe_and_check_and_no_other() -> None:
    from watchtower.checks import registry as checks
    from watchtower.probes import registry as probes

    assert sorted(_diagram_node("checks")) == sorted(checks())
    assert sorted(_diagram_node("probes")) == sorted(probes())
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for endpoint in ("/metrics", "POST /api/v1/alerts", "/api/v1/status", "watchtower scheduler"):
        assert endpoint in text
