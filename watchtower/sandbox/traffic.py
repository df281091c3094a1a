"""The traffic generator: a few simulated users of the image API, at a gentle, bounded rate.

Real requests through the image API's public URL (the gateway), as a browser app would send them:
uploads (most with an Idempotency-Key, now and then a file that is not an image), gets, gallery
listings (a listing seen twice without a write in between is a cache hit) and deletes that keep
each gallery small. The image core counts them as user traffic, so the checks that read user
uploads, dual-writes and cache events have real data. `next_action` and `pause` decide; the
generator does the HTTP.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import urllib3
from PIL import Image, ImageDraw

from watchtower.sandbox.loop import Loop

log = logging.getLogger(__name__)

USERS = ("ada", "grace", "katherine", "edsger")
MAX_GALLERY = 12  # a user with this many images deletes one next
LIST_LIMIT = 20
Kind = Literal["upload", "not_an_image", "get", "list", "delete"]
SUMMARY_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: Kind
    user: str
    image_id: str | None = None


def next_action(galleries: Mapping[str, Sequence[str]], rng: random.Random) -> Action:
    """What one of the users does next, given the images each one has."""
    user = rng.choice(USERS)
    images = list(galleries.get(user, ()))
    if len(images) >= MAX_GALLERY:
        return Action(kind="delete", user=user, image_id=rng.choice(images))
    roll = rng.random()
    if not images or roll < 0.35:
        kind: Kind = "not_an_image" if rng.random() < 0.02 else "upload"
        return Action(kind=kind, user=user)
    if roll < 0.65:
        return Action(kind="list", user=user)
    if roll < 0.9:
        return Action(kind="get", user=user, image_id=rng.choice(images))
    return Action(kind="delete", user=user, image_id=rng.choice(images))


def pause(rate_per_second: float, rng: random.Random) -> float:
    """Seconds until the next request: `rate_per_second` on average, never in bursts."""
    return rng.uniform(0.5, 1.5) / rate_per_second


def photo(rng: random.Random, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small JPEG of coloured shapes: new bytes every upload."""
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 120))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


class TrafficGenerator:
    """Sends one user's request at a time, about `rate` per second, until stopped."""

    def __init__(
        self,
        base_url: str,
        *,
        rate: float = 1.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sign: Callable[[str], str] | None = None,  # a user's bearer token; None: X-User-Id
    ) -> None:
        self._sign = sign
        self._base = base_url.rstrip("/")
        self._rate = rate
        self._rng = rng or random.Random()
        self._clock = clock
        self._http = urllib3.PoolManager(num_pools=1, maxsize=2)
        self.galleries: dict[str, list[str]] = {user: [] for user in USERS}
        self.outcomes: Counter[str] = Counter()
        self._summary_since = clock()
        self.loop = Loop("traffic", lambda: pause(self._rate, self._rng), self.step, log=log)

    def step(self) -> None:
        action = next_action(self.galleries, self._rng)
        try:
            status = self.send(action)
        except urllib3.exceptions.HTTPError as exc:
            self.outcomes[f"{action.kind} failed"] += 1
            log.debug("traffic: %s for %s failed: %s", action.kind, action.user, exc)
        else:
            self.outcomes[f"{action.kind} {status}"] += 1
        self._summarise()

    def send(self, action: Action) -> int:
        headers = (
            {"Authorization": f"Bearer {self._sign(action.user)}"}
            if self._sign is not None
            else {"X-User-Id": action.user}
        )
        gallery = self.galleries[action.user]
        if action.kind in ("upload", "not_an_image"):
            if action.kind == "upload":
                body, name, ctype = photo(self._rng), "photo.jpg", "image/jpeg"
            else:
                body, name, ctype = b"not an image, a note", "notes.txt", "text/plain"
            if self._rng.random() < 0.8:
                headers["Idempotency-Key"] = f"traffic-{uuid.uuid4().hex}"
            answer = self._request(
                "POST", "/images", headers=headers, fields={"file": (name, body, ctype)}
            )
            image_id = _json(answer).get("id")
            if answer.status == 201 and isinstance(image_id, str):
                gallery.append(image_id)
        elif action.kind == "list":
            answer = self._request("GET", f"/images?limit={LIST_LIMIT}", headers=headers)
            if answer.status == 200:
                items = _json(answer).get("items")
                if isinstance(items, list):
                    gallery[:] = [i["id"] for i in items if isinstance(i, dict) and "id" in i]
        else:
            path = f"/images/{quote(action.image_id or '', safe='')}"
            answer = self._request(
                "GET" if action.kind == "get" else "DELETE", path, headers=headers
            )
            if answer.status in (204, 404) and action.image_id in gallery:
                gallery.remove(action.image_id)
        return answer.status

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        return self._http.request(method, self._base + path, timeout=10.0, retries=False, **kw)

    def _summarise(self) -> None:
        now = self._clock()
        if now - self._summary_since < SUMMARY_SECONDS:
            return
        total = sum(self.outcomes.values())
        errors = sum(n for k, n in self.outcomes.items() if k.endswith(("failed", " 502", " 503")))
        top = ", ".join(f"{k}: {n}" for k, n in sorted(self.outcomes.items()))
        log.info(
            "traffic (real requests from %d simulated users), last %.0f s: %d requests, "
            "%d failed (%s)",
            len(USERS),
            now - self._summary_since,
            total,
            errors,
            top,
        )
        self.outcomes.clear()
        self._summary_since = now

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        self._http.clear()


def _json(answer: Any) -> dict[str, Any]:
    try:
        body = json.loads(answer.data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
