"""Runbooks: Markdown documents whose `step` blocks Watchtower runs (docs/runbooks.md).

model (runbooks, steps, executions and their state machine), expressions (the sandboxed
expression language), parser (files, with `file:line` problems), actions/ (the registry),
engine (runs executions; no Flask, boto3, redis or psycopg), store (SQLAlchemy tables),
adapters (the engine's ports over Watchtower's checks and sources), render (prose as HTML),
commands (the CLI).
"""
