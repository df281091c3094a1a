"""The demo's Prometheus and Alertmanager configuration is derived from the repository's own
alerts/ files at start (never a second copy), and a machine without them is told what to install."""

from __future__ import annotations

import pytest
import yaml

from watchtower.sandbox import monitoring


def test_the_demo_rules_are_the_repository_rules_with_shorter_for_and_its_own_links() -> None:
    shipped = yaml.safe_load(monitoring.RULES.read_text())
    rules, summary = monitoring.demo_rules("http://127.0.0.1:18080")
    pairs = [
        (a, b)
        for ga, gb in zip(shipped["groups"], rules["groups"], strict=True)
        for a, b in zip(ga["rules"], gb["rules"], strict=True)
    ]
    assert pairs and all(a["expr"] == b["expr"] and a["labels"] == b["labels"] for a, b in pairs)
    for shipped_rule, demo_rule in pairs:
        expected = max(5, int(monitoring.seconds(shipped_rule["for"]) // monitoring.FOR_DIVISOR))
        assert demo_rule["for"] == f"{expected}s", demo_rule["alert"]
        link = demo_rule["annotations"]["runbook_url"]
        assert link.startswith("http://127.0.0.1:18080/runbooks"), link
    probe = next(b for a, b in pairs if b["alert"] == "ImageUploadProbeFailing")
    assert probe["for"] == "15s"
    assert "ImageUploadProbeFailing 2m -> 15s" in summary[0]


def test_the_demo_alertmanager_config_is_the_example_with_shorter_waits() -> None:
    shipped = yaml.safe_load(monitoring.ALERTMANAGER.read_text())
    config, summary = monitoring.demo_alertmanager()
    assert config["route"]["group_wait"] == "2s" and config["route"]["group_interval"] == "10s"
    assert config["route"]["repeat_interval"] == shipped["route"]["repeat_interval"]
    assert config["receivers"] == shipped["receivers"]  # pointed at the demo when started
    assert summary == ["group_wait 10s -> 2s", "group_interval 1m -> 10s"]


@pytest.mark.parametrize("bad", ["", "2", "m", "2x", "1m 2s"])
def test_durations_are_prometheus_durations(bad: str) -> None:
    assert monitoring.seconds("1h30m") == 5400 and monitoring.seconds("500ms") == 0.5
    with pytest.raises(ValueError):
        monitoring.seconds(bad)


def test_without_the_binaries_the_demo_says_what_is_missing_and_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    started, note = monitoring.start(
        watchtower_url="http://127.0.0.1:1", token="t", prometheus_port=1, log=lambda _: None
    )
    assert started is None and note is not None
    assert "prometheus" in note and "alertmanager" in note
    assert "apt-get install prometheus prometheus-alertmanager" in note
