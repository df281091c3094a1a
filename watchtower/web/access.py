"""Who may reach each route: a level every view declares, and nothing reached without one.

The levels, from open to closed:

* `public`: anyone, signed in or not (the login form, health, metrics, static files);
* `webhook`: Alertmanager with the webhook's own token, checked by the view; no user sign-in;
* `viewer`, `operator`, `admin`: a signed-in user (or the anonymous role) with at least it.

A view declares its level with `@auth.require(role)`, `@access.public` or `@access.webhook`;
the declaration is an attribute of the view function (`view.access`). `auth.init_app` installs a
gate before every request that refuses an endpoint without one (403, logged), so a route added
without a decision fails closed; tests/test_routes.py holds every route of the app to a table.
Routes that are not view functions of ours (Flask's `static`) are declared by endpoint name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from watchtower.config import ROLES

PUBLIC = "public"
WEBHOOK = "webhook"
LEVELS = (PUBLIC, WEBHOOK, *ROLES)
EXTENSION = "watchtower.access"  # endpoint -> level, for views that are not ours

F = TypeVar("F", bound=Callable[..., Any])


def declare(view: F, level: str) -> F:
    """Record `level` on `view`."""
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not an access level ({', '.join(LEVELS)})")
    view.access = level  # type: ignore[attr-defined]
    return view


def public(view: F) -> F:
    """Anyone may reach this view, signed in or not."""
    return declare(view, PUBLIC)


def webhook(view: F) -> F:
    """Reached with the webhook's own token, which the view checks; never user sign-in."""
    return declare(view, WEBHOOK)


def declare_endpoint(app: Flask, endpoint: str, level: str) -> None:
    """Declare `level` for an endpoint whose view is not ours (Flask's `static`)."""
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not an access level ({', '.join(LEVELS)})")
    app.extensions.setdefault(EXTENSION, {})[endpoint] = level


def level_of(app: Flask, endpoint: str) -> str | None:
    """The declared level of `endpoint`, or None when nobody decided."""
    declared: dict[str, str] = app.extensions.get(EXTENSION, {})
    if endpoint in declared:
        return declared[endpoint]
    view = app.view_functions.get(endpoint)
    level = getattr(view, "access", None)
    return level if level in LEVELS else None


def table(app: Flask) -> dict[str, tuple[str, str | None]]:
    """Every rule of `app`: endpoint -> (rule, declared level or None)."""
    return {
        rule.endpoint: (rule.rule, level_of(app, rule.endpoint))
        for rule in app.url_map.iter_rules()
    }
