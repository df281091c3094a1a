"""Renders docs/configuration.md from the settings objects, so the reference cannot drift.

    python scripts/configuration_docs.py           write docs/configuration.md (`make docs`)
    python scripts/configuration_docs.py --check   exit 1 when the committed file is stale

Which variables exist, their defaults and what each accepts come from the code: each package's
`Settings` and its `_VARIABLES` table (`image_core.config`, `watchtower.config`,
`watchtower.cutover.config`), and every check's thresholds from the check registry. The one-line
meanings come from DESCRIPTIONS below, else from the comment beside the field in its Settings
class. A script rather than a `watchtower` module: it reads `image_core` too, and watchtower
never imports the image core.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

# variable -> what it is for. A variable missing here falls back to its field's source comment.
DESCRIPTIONS: dict[str, str] = {
    # image core
    "IMAGE_TABLE": "DynamoDB table: image records and Idempotency-Key claims (index `by_user`, "
    "TTL on `expires_at`)",
    "IMAGE_BUCKET": "S3 bucket for `originals/<user>/<id>.<ext>` and `thumbnails/<user>/<id>.*`",
    "IMAGE_REGION": "AWS region; unset: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the default",
    "AWS_ENDPOINT_URL": "boto3's endpoint override (the moto server locally); unset for real AWS",
    "IMAGE_REDIS_URL": "Redis for gallery pages; unset: no cache",
    "IMAGE_LEGACY_DATABASE_URL": "PostgreSQL holding the legacy table; required with dual-write",
    "IMAGE_LEGACY_TABLE": "the legacy table dual-write inserts into, `table` or `schema.table` "
    "(letters, digits, `_`; anything else fails start-up); composed as a quoted identifier, so "
    "its case is kept; Watchtower's `WATCHTOWER_LEGACY_TABLE` must name the same table",
    "ENABLE_DYNAMODB_DUAL_WRITE": "also insert every upload into the legacy table (Story 6.1 "
    "turns it off)",
    "IMAGE_TRUST_USER_HEADER": "take the caller from `X-User-Id` (only behind a trusted proxy)",
    "IMAGE_JWT_ISSUER": "served as a server, verify `Authorization: Bearer` JWTs from this issuer "
    "(`iss`) and take the caller from `sub`; needs the audience and one key source; unset: "
    "bearer tokens are not read (on Lambda the HTTP API JWT authorizer verifies them)",
    "IMAGE_JWT_AUDIENCE": "the `aud` the API's tokens must carry",
    "IMAGE_JWT_JWKS_URL": "the issuer's JWKS (RS256/ES256 keys), fetched and cached for 5 min",
    "IMAGE_JWT_SHARED_KEY": "an HS256 key (32+ characters) instead of a JWKS: tests and the local "
    "demo issuer; a secret",
    "IMAGE_REQUIRE_IDEMPOTENCY_KEY": "reject uploads without `Idempotency-Key` (400)",
    "IMAGE_MAX_BYTES": "largest upload in bytes (413 above)",
    "IMAGE_MAX_PIXELS": "largest image in pixels, judged from the header (413); at most Pillow's "
    "own limit",
    "IMAGE_THUMBNAIL_SIZE": "longest side of a thumbnail, pixels",
    "IMAGE_CDN_BASE_URL": "base of the URLs returned for images; unset: presigned S3 URLs",
    "IMAGE_PRESIGN_SECONDS": "lifetime of presigned URLs",
    "IMAGE_IDEMPOTENCY_TTL_SECONDS": "how long a finished upload is replayed for its key",
    "IMAGE_IDEMPOTENCY_IN_PROGRESS_SECONDS": "after this, a claim left by a crashed request lapses",
    "IMAGE_CACHE_TTL_SECONDS": "lifetime of a cached gallery page",
    "IMAGE_S3_WORKERS": "threads writing original and thumbnail in parallel",
    "IMAGE_METRICS_NAMESPACE": "CloudWatch namespace of the image core's metrics",
    "IMAGE_METRICS_SINK": "`emf` on Lambda, `cloudwatch` (PutMetricData) as a server, or `none`",
    "IMAGE_METRICS_FLUSH_SECONDS": "how often aggregated metrics are sent with PutMetricData",
    "IMAGE_SERVICE_NAME": "the `service` field of EMF lines",
    # watchtower
    "WATCHTOWER_IMAGE_API_URL": "the image API the `upload_get` probe walks, as a user would",
    "WATCHTOWER_DATABASE_URL": "history, alerts, runbook runs and cutover records; PostgreSQL "
    "when more than one process runs (SQLite only for one host)",
    "WATCHTOWER_REDIS_URL": "the job lock that lets several schedulers run each job once per "
    "interval; unset: an in-process lock (one scheduler only)",
    "WATCHTOWER_AWS_REGION": "region of the table, function and logs; unset: `AWS_REGION`, else "
    "`AWS_DEFAULT_REGION`, else the default (CloudFront metrics are always read in us-east-1)",
    "WATCHTOWER_TABLE": "the image service's DynamoDB table (its metrics, runbook targets)",
    "WATCHTOWER_BUCKET": "the image service's S3 bucket (runbook targets)",
    "WATCHTOWER_LAMBDA_FUNCTION": "the image API's Lambda function: the dual-write flag, cold "
    "starts, runbook targets",
    "WATCHTOWER_LAMBDA_ALIAS": "the alias traffic goes through (`live`, `prod`): the dual-write "
    "flag is read from the version(s) it serves and the runbooks publish a version and move it; "
    "unset: the function is served unqualified (`$LATEST`)",
    "WATCHTOWER_LAMBDA_LOG_GROUP": "its log group; unset: `/aws/lambda/<function>`",
    "WATCHTOWER_CLOUDFRONT_DISTRIBUTION_ID": "the distribution `cloudfront_hit_rate` reads; "
    "unset: that check is unknown",
    "WATCHTOWER_METRICS_NAMESPACE": "where the image core publishes (its IMAGE_METRICS_NAMESPACE)",
    "WATCHTOWER_LEGACY_DATABASE_URL": "the legacy PostgreSQL, read-only (`postgres_inserts`, "
    "runbook SQL); unset: that check is unknown",
    "WATCHTOWER_LEGACY_TABLE": "the legacy table (the image core's `IMAGE_LEGACY_TABLE`), "
    "`table` or `schema.table` (letters, digits, `_`; anything else fails start-up): read by "
    "`postgres_inserts`, the cutover's evidence, reconciliation and backfill, `watchtower "
    "doctor`, and `{legacy_table}` in runbook SQL, always as a quoted identifier",
    "WATCHTOWER_PROBE_USER": "the `X-User-Id` the probe uploads as",
    "WATCHTOWER_PROBE_TOKEN": "the probe's bearer token (a secret, never logged); for a token "
    "that expires, use the file or the command instead",
    "WATCHTOWER_PROBE_TOKEN_FILE": "a file holding the probe's bearer token, re-read when it "
    "changes and before the token expires (what a sidecar refreshes)",
    "WATCHTOWER_PROBE_TOKEN_COMMAND": "a command printing the probe's bearer token (or JSON with "
    "`token`/`access_token`/`id_token`), run again before it expires; none of the three: the "
    "probe sends `X-User-Id`, which only an API with `IMAGE_TRUST_USER_HEADER` on believes",
    "WATCHTOWER_PROBE_INTERVAL": "seconds between probe runs",
    "WATCHTOWER_PROBE_TIMEOUT_SECONDS": "each probe request's timeout",
    "WATCHTOWER_CHECKS_TICK": "how often due checks are looked for, seconds",
    "WATCHTOWER_CHECKS_INTERVAL": "every check's interval, unless overridden per check (below)",
    "WATCHTOWER_RETENTION_DAYS": "history older than this is pruned hourly",
    "WATCHTOWER_SCHEDULER_JITTER": "at most this many seconds' random wait before a locked job, "
    "so replicas do not fire together",
    "WATCHTOWER_SANDBOX": "the demo: simulated telemetry is labelled as such on the pages",
    "WATCHTOWER_USERS": "who may do what; a plain secret is a bearer token (and the password for "
    "basic auth and the login form), a werkzeug hash (`pbkdf2:`/`scrypt:`) a password only. "
    "Secret: pass it at run time",
    "WATCHTOWER_ANONYMOUS_ROLE": "what a visitor who is not logged in may do",
    "WATCHTOWER_TRUSTED_USER_HEADER": "single sign-on: the header in which your reverse proxy "
    "names the user it signed in (e.g. `X-Forwarded-User`); unset: off. Believed only from "
    "`WATCHTOWER_TRUSTED_PROXIES` (docs/security.md)",
    "WATCHTOWER_TRUSTED_PROXIES": "the addresses the proxy connects from; that header from any "
    "other address is ignored and logged",
    "WATCHTOWER_PROXY_USERS": "the role of each name the proxy signs in: the proxy says who, this "
    "says what they may do (no role is ever read from a header)",
    "WATCHTOWER_PROXY_DEFAULT_ROLE": "the role of a proxy-signed-in name not in "
    "`WATCHTOWER_PROXY_USERS`; `none`: such a name is not signed in",
    "WATCHTOWER_WEBHOOK_TOKEN": "Alertmanager's bearer token for `POST /api/v1/alerts`; unset: "
    "the webhook answers 503. Secret",
    "WATCHTOWER_SECRET_KEY": "signs session cookies; unset: random per process, so sessions do "
    "not survive a restart or cross replicas. Secret; the same on every web replica",
    "WATCHTOWER_PUBLIC_URL": "where people reach Watchtower (links in runbooks and reports); "
    "`https://` also marks cookies Secure",
    "WATCHTOWER_WEBHOOK_MAX_BYTES": "the largest Alertmanager notification accepted (413 above)",
    "WATCHTOWER_WEBHOOK_DEFERRED": "answer a notification once it is stored (one write) and "
    "dispatch it from the store on the intake (`WATCHTOWER_WEBHOOK_INTAKE` says where); off: "
    "dispatch first",
    "WATCHTOWER_ROUTES_FILE": "which alerts start which runbooks (the shape of "
    "`alerts/routes.yml`), validated at start-up",
    "WATCHTOWER_PROMETHEUS_URL": "Prometheus' HTTP API, for runbook `query` steps in PromQL",
    "WATCHTOWER_ALERTMANAGER_URL": "Alertmanager's API v2, for the runbook actions that create "
    "and expire silences (alertmanager.create_silence, alertmanager.expire_silence)",
    "WATCHTOWER_IMAGE_REDIS_URL": "the image service's Redis, for the gallery-cache runbook action",
    "WATCHTOWER_RUNBOOKS_DIR": "where the runbooks are read from",
    "WATCHTOWER_RUNBOOK_APPROVAL_TIMEOUT": "seconds an approval request waits before it expires",
    "WATCHTOWER_RUNBOOK_WORKERS": "runbook executions advanced at once by one scheduler",
    "WATCHTOWER_RUNBOOK_WORKER_NICE": "how much nicer than its process the runbook worker's "
    "threads run (Linux; 0: at the process's own priority): in an alert storm, answering and "
    "starting runs come first",
    "WATCHTOWER_RUNBOOK_LEASE_SECONDS": "a replica silent this long (no heartbeat) has stopped: "
    "its runbook executions are taken over",
    # cutover
    "WATCHTOWER_CUTOVER_WINDOW_HOURS": "how long the flag must stay off before sign-off",
    "WATCHTOWER_CUTOVER_SAMPLE_INTERVAL": "one evidence sample per slot of this many seconds",
    "WATCHTOWER_CUTOVER_METRICS_LAG": "a sample reads the slot that ended this many seconds ago "
    "(CloudWatch publishes late)",
    "WATCHTOWER_CUTOVER_GRACE": "seconds after the flip in which dual-writes still count as before",
    "WATCHTOWER_CUTOVER_PREFLIGHT_DAYS": "days of the dual-write monitoring report",
    "WATCHTOWER_CUTOVER_BASELINE_DAYS": "days before the flip the window is compared with",
    "WATCHTOWER_CUTOVER_MIN_COVERAGE": "share of the window's samples that must exist",
    "WATCHTOWER_CUTOVER_MIN_SUCCESS_RATIO": "the pre-flight gate: dual-write success over it",
    "WATCHTOWER_CUTOVER_RECONCILIATION_TOLERANCE": "share of DynamoDB's count the two stores may "
    "differ by",
    "WATCHTOWER_CUTOVER_MAX_P95_MS": "the one upload P95 objective: judged by the window's "
    "`upload_latency`, the `upload_success` check (as `objective_ms`) and both `ImageUploadSlow` "
    "alerts; must be one of `WATCHTOWER_CUTOVER_LATENCY_THRESHOLDS_MS`",
    "WATCHTOWER_CUTOVER_MAX_P95_REGRESSION": "the window's P95 may be at most this much above "
    "the baseline",
    "WATCHTOWER_CUTOVER_MAX_BREACH_MINUTES": "a latency breach longer than this fails the window",
    "WATCHTOWER_CUTOVER_MIN_WRITE_RATIO": "DynamoDB writes per hour, as a share of the same "
    "hours' baseline",
    "WATCHTOWER_CUTOVER_MAX_LOW_WRITE_HOURS": "hours below that share the window tolerates",
    "WATCHTOWER_CUTOVER_MAX_LAMBDA_ERROR_RATIO": "Lambda error share the window tolerates",
    "WATCHTOWER_CUTOVER_SIGNERS": "the stakeholder roles that sign the report",
    "WATCHTOWER_CUTOVER_SIGNER_USERS": "which logins may sign which role (unlisted roles: any "
    "operator); one login signs one role of a window either way (docs/cutover.md)",
    "WATCHTOWER_CUTOVER_COST_TAG": "cost allocation tag of the image service (the final "
    "report's Cost Explorer figures)",
    "WATCHTOWER_CUTOVER_ROLLBACK_RUNBOOK": "the runbook the report offers as the rollback",
    "WATCHTOWER_CUTOVER_REHEARSAL": "a rehearsal (the sandbox; `watchtower demo` sets it): every "
    "window, document, report and hash is marked REHEARSAL, sign-offs are by the signers' roles "
    "with ` (REHEARSAL)` added, and the window and sampling are the two below",
    "WATCHTOWER_CUTOVER_REHEARSAL_WINDOW_SECONDS": "a rehearsal's window length, in seconds",
    "WATCHTOWER_CUTOVER_REHEARSAL_SAMPLE_SECONDS": "a rehearsal's sampling interval, in seconds",
}

# What each parser accepts, by its name (closures: the name of the function that made them).
ACCEPTS: dict[str, str] = {
    "parse_bool": "`true` or `false`",
    "flag": "`true` or `false`",
    "_positive_int": "a whole number > 0",
    "positive_int": "a whole number > 0",
    "_non_negative_int": "a whole number >= 0",
    "non_negative_int": "a whole number >= 0",
    "_nice": "a whole number from 0 to 19",
    "_minutes_int": "seconds, a whole number of minutes",
    "number": "a number",
    "_positive_number": "a number > 0",
    "positive_number": "a number > 0",
    "ratio": "a number from 0 to 1",
    "_name": "text",
    "_text": "text",
    "_strong": "text of 32 random bytes or more, e.g. `secrets.token_urlsafe(32)`",
    "_metrics_sink": "`auto`, `cloudwatch`, `emf` or `none`",
    "_users": "`name:role:secret`, comma-separated; role `viewer`, `operator` or `admin`; a "
    "plain secret of 32 random bytes or more, or a password hash",
    "_anonymous_role": "`none`, `viewer`, `operator` or `admin`",
    "_intake_place": "`scheduler`, `process` or `web`",
    "_header_name": "an HTTP header name",
    "_networks": "addresses or CIDR blocks, comma-separated (IPv4 or IPv6)",
    "_proxy_users": "`name:role`, comma-separated; role `viewer`, `operator` or `admin`",
    "_routes_file": "a path to a YAML file",
    "_names": "names, comma-separated",
    "_signer_users": "`role:user1\\|user2,role2:user3`",
    "_tag": "`key=value`",
    "_runbook_id": "a runbook id",
    "_latency_thresholds": "1 to 10 whole milliseconds (1 to 600000), ascending, comma-separated",
}
UNITS = {3600: "hours", 60: "minutes"}

OUTSIDE: list[tuple[str, str, str]] = [  # what, where it is read, notes
    (
        "AWS credentials",
        "boto3's default chain",
        "an IAM role (task role, instance profile, IRSA) in production; "
        "`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` only for local tools. "
        "The permissions: `docs/deployment.md`",
    ),
    (
        "`AWS_REGION`, `AWS_DEFAULT_REGION`",
        "both packages' `Settings.from_env`",
        "the region when `IMAGE_REGION` / `WATCHTOWER_AWS_REGION` is unset",
    ),
    (
        "`GUNICORN_CMD_ARGS`",
        "gunicorn",
        "overrides `watchtower/gunicorn_conf.py` (bind, threads, timeouts) without a new image",
    ),
    (
        "`--host`, `--port`",
        "`watchtower serve`, `watchtower scheduler`",
        "where that process listens (default 127.0.0.1:8080; in a container, `--host 0.0.0.0`)",
    ),
]


def accepts(parse: Callable[..., Any]) -> str:
    name = parse.__qualname__.split(".<locals>")[0]
    if name == "_url":
        schemes = inspect.getclosurevars(parse).nonlocals.get("schemes", ())
        return "a URL: " + ", ".join(f"`{s}:`" for s in schemes)
    return ACCEPTS.get(name, f"see `{parse.__module__}.{name}`")


def shown(value: Any, parse: Callable[..., Any], scale: int = 1) -> str:
    name = parse.__qualname__.split(".<locals>")[0]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if name == "_tag":
        return f"`{value[0]}={value[1]}`"
    if isinstance(value, tuple):
        return ", ".join(f"`{v}`" for v in value) if value else "none"
    if isinstance(value, int | float) and scale != 1:
        value = value / scale
        value = int(value) if float(value).is_integer() else value
    return f"`{value}`"


def field_comments(cls: type) -> dict[str, str]:
    """field -> the comment beside it (or on the lines just above it) in the class source."""
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^=]+(?:=.*?)?(?:#\s*(.+))?$", stripped)
        if match:
            beside = match.group(2)
            comments[match.group(1)] = beside or " ".join(above)
        above = []
    return {k: v for k, v in comments.items() if v}


def rows(module: ModuleType, cls: type, *, scaled: bool = False) -> list[str]:
    defaults = cls()
    declared = module.variables()
    comments = field_comments(cls)
    out = []
    for field_name, entry in module._VARIABLES.items():
        variable, parse = entry[0], entry[1]
        scale = entry[2] if scaled else 1
        value = getattr(defaults, field_name)
        # A settings module that says its default in words (variables()) is taken at its word.
        default = (
            declared[variable]
            if declared.get(variable) not in (None, repr(value))
            else shown(value, parse, scale)
        )
        what = accepts(parse)
        if scale in UNITS:
            what += f", in {UNITS[scale]}"
        meaning = DESCRIPTIONS.get(variable) or comments.get(field_name, "")
        out.append(f"| `{variable}` | {default} | {what} | {meaning} |")
    return out


def table(lines: Iterable[str]) -> list[str]:
    return ["| variable | default | accepts | what it is for |", "|---|---|---|---|", *lines]


def without_variable(module: ModuleType, cls: type, skip: set[str]) -> list[str]:
    """Settings fields no environment variable sets: they keep their default."""
    named = set(module._VARIABLES) | skip
    defaults = cls()
    return [
        f"`{f.name}` ({shown(getattr(defaults, f.name), lambda *_: None)})"
        for f in dataclasses.fields(cls)
        if f.name not in named
    ]


def check_rows() -> list[str]:
    from watchtower.checks import registry

    out = []
    for name, check in sorted(registry().items()):
        prefix = f"WATCHTOWER_CHECK_{name.upper()}_"
        out.append(f"| `{prefix}INTERVAL` | `{check.interval}` | {check.title}: seconds |")
        for key, value in check.defaults.items():
            out.append(f"| `{prefix}{key.upper()}` | `{value}` | {check.title} |")
    return out


def render() -> str:
    from image_core import config as image_config
    from watchtower import config as watchtower_config
    from watchtower.cutover import config as cutover_config

    parts = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/configuration_docs.py from the settings objects (`make docs`)."
        " Do not edit: tests/test_docs.py fails when this file and the code disagree. -->",
        "",
        "Every setting is an environment variable, read once at start-up by its package's "
        "`Settings.from_env`; an invalid value stops the process with one line naming the "
        "variable (exit 2). Besides the runbooks themselves, the one file read is "
        "`WATCHTOWER_ROUTES_FILE`. An empty value counts as unset, except for booleans, where "
        "it means false.",
        "",
        "## Watchtower (`watchtower/config.py`)",
        "",
        *table(rows(watchtower_config, watchtower_config.Settings)),
        "",
    ]
    fixed = without_variable(watchtower_config, watchtower_config.Settings, {"check_overrides"})
    if fixed:
        parts += [
            "Settings without a variable yet (they keep these defaults): " + ", ".join(fixed) + ".",
            "",
        ]
    parts += [
        "### Check thresholds and intervals",
        "",
        "`WATCHTOWER_CHECK_<CHECK>_<SETTING>` overrides one check's threshold or interval (a "
        "number); a name no check has stops start-up. The defaults, from each check's class:",
        "",
        "| variable | default | check |",
        "|---|---|---|",
        *check_rows(),
        "",
        "## The cutover sign-off (`watchtower/cutover/config.py`)",
        "",
        "Read by the processes that serve or sample the cutover; an unknown "
        "`WATCHTOWER_CUTOVER_*` variable stops start-up.",
        "",
        *table(rows(cutover_config, cutover_config.CutoverSettings, scaled=True)),
        "",
        "## The image core (`image_core/config.py`)",
        "",
        "The image service's own process (Lambda or `python -m image_core serve`); Watchtower "
        "never reads these.",
        "",
        *table(rows(image_config, image_config.Settings)),
        "",
        "## Outside the settings objects",
        "",
        "| what | where it is read | notes |",
        "|---|---|---|",
        *(f"| {what} | {where} | {notes} |" for what, where, notes in OUTSIDE),
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
