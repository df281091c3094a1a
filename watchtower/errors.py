"""Watchtower's exceptions, one tree.

WatchtowerError
├── ConfigError        a WATCHTOWER_* setting is invalid (names the variable)
└── SourceError        a probe or check could not read its source; becomes status `unknown`
"""

from __future__ import annotations


class WatchtowerError(Exception):
    """Base of every error Watchtower raises on purpose."""


class ConfigError(WatchtowerError):
    """A setting is missing or invalid; the message names the environment variable."""


class SourceError(WatchtowerError):
    """A source (CloudWatch, Logs, Lambda, PostgreSQL, the image API) could not be read."""
