"""Prometheus and Alertmanager for the demo, from the repository's own alerts/ files.

Prometheus scrapes the demo's Watchtower and evaluates alerts/watchtower.rules.yml; Alertmanager
runs alerts/alertmanager.example.yml with its webhook pointed at the demo's /api/v1/alerts and the
demo's webhook token. The demo's shorter waits are derived from those same files when it starts
(every rule's `for` divided by FOR_DIVISOR, Alertmanager's group_wait and group_interval
shortened), and the banner lists every change: there is no second copy of the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchtower.sandbox.servers import (
    LOOPBACK,
    MONITORING_INSTALL,
    HttpServer,
    ServerUnavailable,
    monitoring_binary,
    start_alertmanager,
    start_prometheus,
)

ALERTS = Path(__file__).resolve().parents[2] / "alerts"
RULES = ALERTS / "watchtower.rules.yml"
ALERTMANAGER = ALERTS / "alertmanager.example.yml"
RULES_BASE_URL = "http://127.0.0.1:8080"  # the runbook_url base the rules file ships with
FOR_DIVISOR = 8  # the demo's `for` is the file's divided by this (2m -> 15s)
MIN_FOR_SECONDS = 5
SCRAPE_INTERVAL = "5s"
ALERTMANAGER_WAITS = {"group_wait": "2s", "group_interval": "10s"}

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def seconds(duration: str) -> float:
    """A Prometheus duration (`2m`, `1h30m`) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def demo_rules(public_url: str, path: Path = RULES) -> tuple[dict[str, Any], list[str]]:
    """The rules file with the demo's `for` and runbook links; and what was changed, for people."""
    rules: dict[str, Any] = yaml.safe_load(path.read_text())
    changed: dict[str, str] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                shorter = max(MIN_FOR_SECONDS, int(seconds(str(rule["for"])) // FOR_DIVISOR))
                changed.setdefault(rule["alert"], f"{rule['for']} -> {shorter}s")
                rule["for"] = f"{shorter}s"
            annotations = rule.get("annotations") or {}
            link = annotations.get("runbook_url")
            if isinstance(link, str) and link.startswith(RULES_BASE_URL):
                annotations["runbook_url"] = public_url.rstrip("/") + link[len(RULES_BASE_URL) :]
    summary = [
        f"every rule's `for` divided by {FOR_DIVISOR} (at least {MIN_FOR_SECONDS}s): "
        + ", ".join(f"{name} {change}" for name, change in changed.items()),
        f"runbook_url base {RULES_BASE_URL} -> {public_url}",
    ]
    return rules, summary


def demo_alertmanager(path: Path = ALERTMANAGER) -> tuple[dict[str, Any], list[str]]:
    """The example configuration with the demo's waits; and what was changed, for people."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    route = config["route"]
    summary = []
    for key, value in ALERTMANAGER_WAITS.items():
        summary.append(f"{key} {route.get(key, 'default')} -> {value}")
        route[key] = value
    return config, summary


@dataclass
class Monitoring:
    prometheus: HttpServer
    alertmanager: HttpServer
    changes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for server in (self.prometheus, self.alertmanager):
            server.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "prometheus": self.prometheus.url,
            "alertmanager": self.alertmanager.url,
            "demo_waits": list(self.changes),
        }


def missing() -> list[str]:
    """What is not installed (empty when both are), and the files that are not there."""
    absent = [name for name in ("prometheus", "alertmanager") if monitoring_binary(name) is None]
    absent += [str(p) for p in (RULES, ALERTMANAGER) if not p.is_file()]
    return absent


def start(
    *,
    watchtower_url: str,
    token: str,
    prometheus_port: int,
    log: Callable[[str], None] = print,
) -> tuple[Monitoring | None, str | None]:
    """Both servers, or none and a note saying what is missing and how to install it."""
    absent = missing()
    if absent:
        return None, (
            f"Prometheus and Alertmanager are not running ({', '.join(absent)} missing: "
            f"{MONITORING_INSTALL}); no alert fires and no runbook starts by itself"
        )
    rules, rule_changes = demo_rules(watchtower_url)
    config, am_changes = demo_alertmanager()
    alertmanager = prometheus = None
    try:
        alertmanager = start_alertmanager(
            webhook_url=f"{watchtower_url}/api/v1/alerts", token=token, config=config
        )
        log(f"alertmanager            {alertmanager.url}")
        prometheus = start_prometheus(
            scrape=watchtower_url.split("://", 1)[1],
            alertmanager=f"{LOOPBACK}:{alertmanager.port}",
            rules=rules,
            port=prometheus_port,
            interval=SCRAPE_INTERVAL,
        )
        log(f"prometheus              {prometheus.url}")
    except ServerUnavailable as exc:
        if alertmanager is not None:
            alertmanager.stop()
        return None, f"Prometheus and Alertmanager are not running ({exc})"
    changes = [f"{RULES.name}: {c}" for c in rule_changes] + [
        f"{ALERTMANAGER.name}: {c}" for c in am_changes
    ]
    return Monitoring(prometheus=prometheus, alertmanager=alertmanager, changes=changes), None
