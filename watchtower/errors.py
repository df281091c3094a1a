"""Watchtower's exceptions, one tree.

WatchtowerError
├── ConfigError        a WATCHTOWER_* setting is invalid (names the variable)
├── SourceError        a probe or check could not read its source; becomes status `unknown`
├── PayloadError       an Alertmanager webhook body is malformed (names the field); HTTP 400
├── StoreUnavailable   a store (history, runbook, cutover) cannot be reached; HTTP 503. Stores
│                      raise it at their boundary: nothing above them sees SQLAlchemy's errors
├── SandboxError       the demo's sandbox cannot do what was asked
│   ├── UnknownScenario      no scenario has that name; HTTP 400
│   └── ScenarioUnavailable  the scenario cannot play here (no PostgreSQL, a failed restart); 409
├── RunbookError       the runbook engine's tree: watchtower.runbook.errors
└── CutoverError       the cutover sign-off's tree: watchtower.cutover.errors
"""

from __future__ import annotations


class WatchtowerError(Exception):
    """Base of every error Watchtower raises on purpose."""


class ConfigError(WatchtowerError):
    """A setting is missing or invalid; the message names the environment variable."""


class SourceError(WatchtowerError):
    """A source (CloudWatch, Logs, Lambda, PostgreSQL, the image API) could not be read."""


class PayloadError(WatchtowerError):
    """An Alertmanager notification is malformed; `field` names where (`alerts[0].labels`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StoreUnavailable(WatchtowerError):
    """A store's database could not be reached or answered with an error; the message names the
    store and what failed, never the database URL (it may carry a password)."""


class SandboxError(WatchtowerError):
    """The sandbox (`watchtower demo`) cannot do what was asked."""


class UnknownScenario(SandboxError):
    """No scenario has that name; the message lists the known ones."""


class ScenarioUnavailable(SandboxError):
    """The scenario cannot play in this sandbox now; the message says why."""
