"""`cache.invalidate_user_gallery`: drop one user's cached gallery pages from the image
service's Redis, with SCAN MATCH and UNLINK in batches, never KEYS (which blocks Redis).

The image service keeps a user's pages under a generation: `gallery:{<user>}:gen` holds it, and
pages are `gallery:{<user>}:p:<generation>:<limit>:<cursor>` (the braces are a Redis Cluster hash
tag). Watchtower does not import the image service, so the format is restated here, and a test
pins the two together. The action first gives the user a new generation, as an upload does: every
cached page is unreachable at once, including one a listing in flight is about to write under
the generation it read. Then it SCANs `gallery:{<user>}:*` and UNLINKs the old keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import redis

from watchtower.runbook.actions.base import Action, ActionContext, register
from watchtower.runbook.errors import ActionError
from watchtower.runbook.model import ApiCall, Param

USER_ID = r"[A-Za-z0-9][A-Za-z0-9_.@:+=-]{0,127}"  # as the image API accepts X-User-Id
SCAN_COUNT = 500
UNLINK_BATCH = 500
GENERATION_TTL = 7 * 24 * 3600  # as the image service sets it
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def user_pattern(user: str) -> str:
    return f"gallery:{{{user.translate(_GLOB_SPECIAL)}}}:*"


def generation_key(user: str) -> str:
    return f"gallery:{{{user}}}:gen"


def pages_prefix(user: str, generation: str) -> str:
    return f"gallery:{{{user}}}:p:{generation}:"


@register
class InvalidateUserGallery(Action):
    name = "cache.invalidate_user_gallery"
    title = "Drop a user's cached gallery pages"
    gated = False  # a cache: the next request reads DynamoDB and fills it again
    inputs = (Param(name="user", pattern=USER_ID, required=True),)

    def _client(self, ctx: ActionContext) -> Any:
        if ctx.redis is None:
            raise ActionError(
                "the image service's Redis is not configured (WATCHTOWER_IMAGE_REDIS_URL)"
            )
        return ctx.redis()

    def plan(self, values: Mapping[str, Any], ctx: ActionContext) -> list[ApiCall]:
        user = values["user"]
        return [
            ApiCall(
                service="redis",
                operation="SET",
                parameters={
                    "key": generation_key(user),
                    "value": "<a new random generation>",
                    "ex": GENERATION_TTL,
                },
                note="every cached page of the user is unreachable from here on",
            ),
            ApiCall(
                service="redis",
                operation="SCAN",
                parameters={"cursor": 0, "match": user_pattern(user), "count": SCAN_COUNT},
                note="repeated until the cursor is 0 again",
            ),
            ApiCall(
                service="redis",
                operation="UNLINK",
                parameters={"keys": f"<each key matching {user_pattern(user)}, but the new ones>"},
                note=f"in batches of up to {UNLINK_BATCH}",
            ),
        ]

    def run(self, values: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
        client = self._client(ctx)
        user = values["user"]
        generation = secrets.token_hex(8)
        keep = (generation_key(user), pages_prefix(user, generation))
        removed = 0
        try:
            client.set(generation_key(user), generation, ex=GENERATION_TTL)
            batch: list[Any] = []
            # SCAN may return a key twice; UNLINK of a key already gone is harmless.
            for key in client.scan_iter(match=user_pattern(user), count=SCAN_COUNT):
                text = key.decode() if isinstance(key, bytes) else str(key)
                if text == keep[0] or text.startswith(keep[1]):
                    continue
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    removed += _unlink(client, batch)
                    batch = []
            if batch:
                removed += _unlink(client, batch)
        except redis.RedisError as exc:
            raise ActionError(f"gallery cache of user {user!r}: {exc}") from exc
        return {
            "user": user,
            "pattern": user_pattern(user),
            "generation": generation,
            "unlinked": removed,
        }


def _unlink(client: Any, keys: list[Any]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(int(n) for n in pipe.execute())
