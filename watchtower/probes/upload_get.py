"""`upload_get`: the image API's whole upload-and-get path, walked as a synthetic user.

    upload       POST /images, fresh image bytes, a fresh Idempotency-Key   -> 201 and an id
    replay       the very same request again                               -> 200, the same id,
                                                                              Idempotent-Replayed
    get          GET /images/{id}                                          -> 200, same id, sha256
    thumbnail    GET the thumbnail URL the API returned (CDN or presigned)  -> decodes, <= 400 px
    list         GET /images, newest first                                 -> the image is listed
    delete       DELETE /images/{id}                                       -> 204
    get_deleted  GET /images/{id}                                          -> 404
    cleanup      only when the walk stopped early: delete what this run created

The first failed step ends the walk; cleanup still runs, so probes leave nothing behind. Every
request to the API carries the probe's bearer token when one is configured (else the probe user
in `X-User-Id`) and `X-Synthetic-Traffic: 1`, so the
image core can keep probe traffic out of its business metrics and the cutover reconciliation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from PIL import Image
from urllib3 import exceptions as http_errors

from watchtower.model import Result, Status, StepResult
from watchtower.probes.base import HttpResponse, Probe, ProbeContext, register, transport_failure
from watchtower.probes.credential import CredentialError

STEPS = ("upload", "replay", "get", "thumbnail", "list", "delete", "get_deleted")
USER_HEADER = "X-User-Id"
SYNTHETIC_HEADER = "X-Synthetic-Traffic"
MAX_THUMBNAIL_PX = 400
IMAGE_PX = 64
_LIST_LIMIT = 20
_LIST_PAGES = 3  # newest first: the image is on page one unless other uploads raced it


@register
class UploadGet(Probe):
    name = "upload_get"
    title = "Upload and get, as a user"
    component = "image_api"
    # The epic's objective: upload P95 under 800 ms. One slow run is a warning, never a page.
    defaults = {"warning_upload_seconds": 0.8, "warning_total_seconds": 4.0}

    def run(self, ctx: ProbeContext) -> Result:
        walk = _Walk(ctx)
        started = ctx.clock()
        try:
            walk.walk()
        finally:
            walk.clean_up()
        return self._judge(ctx, walk, total=ctx.clock() - started)

    def _judge(self, ctx: ProbeContext, walk: _Walk, *, total: float) -> Result:
        params = self.params(ctx)
        steps = tuple(walk.steps)
        by_name = {s.name: s for s in steps}
        figures: dict[str, float | None] = {
            f"{name}_seconds": by_name[name].seconds if name in by_name else None
            for name in (*STEPS, "cleanup")
        }
        figures["total_seconds"] = total
        figures["images_left_behind"] = float(len(walk.left_behind))

        def result(status: Status, reason: str) -> Result:
            return self.result(
                ctx, status, reason, steps=steps, figures=figures, duration_seconds=total
            )

        failed = next((s for s in steps if not s.ok), None)
        if walk.sign_in_failure is not None:
            # Not "the upload failed": the API turned the probe's credential away (or it could
            # not be had), which says nothing yet about uploads.
            reason = walk.sign_in_failure
            cleanup = by_name.get("cleanup")
            if cleanup is not None and not cleanup.ok:
                reason += f"; cleanup failed: {cleanup.reason}"
            return result(Status.CRITICAL, reason)
        if failed is not None:
            if failed.name == "upload" and walk.unreachable:
                # Critical, not unknown: `unknown` means "we could not read the source", but here
                # the API is not a source of readings, it is the thing under test, and a user
                # would be turned away just the same. The API being down is the outage this
                # probe exists to catch.
                reason = f"image API unreachable: {failed.reason}"
            else:
                reason = f"{failed.name} failed: {failed.reason}"
            cleanup = by_name.get("cleanup")
            if cleanup is not None and cleanup is not failed and not cleanup.ok:
                reason += f"; cleanup failed: {cleanup.reason}"
            return result(Status.CRITICAL, reason)
        slow = []
        upload = by_name["upload"].seconds
        if upload > params["warning_upload_seconds"]:
            slow.append(
                f"upload took {upload:.2f} s "
                f"(warning over {params['warning_upload_seconds']:.2f} s)"
            )
        if total > params["warning_total_seconds"]:
            slow.append(
                f"the walk took {total:.2f} s "
                f"(warning over {params['warning_total_seconds']:.2f} s)"
            )
        if slow:
            return result(Status.WARNING, "slow: " + "; ".join(slow))
        return result(Status.OK, f"all {len(steps)} steps ok in {total:.2f} s")


def fresh_image(px: int = IMAGE_PX) -> bytes:
    """A PNG of random pixels: new bytes every run, so no cache or dedup can answer for the API."""
    image = Image.frombytes("RGB", (px, px), os.urandom(px * px * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _StepFailed(Exception):
    def __init__(self, reason: str, *, unreachable: bool = False, ambiguous: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable  # no connection: the request never reached the API
        self.ambiguous = ambiguous  # sent, but the answer was lost: it may have taken effect


class _Walk:
    """One run's state: the steps so far and every image id it learned, for the cleanup."""

    def __init__(self, ctx: ProbeContext) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._base = settings.image_api_url.rstrip("/")
        self._timeout = float(settings.probe_timeout_seconds)
        self._headers = {USER_HEADER: settings.probe_user, SYNTHETIC_HEADER: "1"}
        self._key = f"watchtower-probe-{uuid.uuid4().hex}"
        self._image = fresh_image()
        self._body: dict[str, Any] = {}
        self.steps: list[StepResult] = []
        self.created: list[str] = []  # every image id the API answered this run, first = ours
        self.gone: set[str] = set()  # ids confirmed deleted
        self.unreachable = False
        self.upload_ambiguous = False
        self.sign_in_failure: str | None = None  # why the probe could not sign in, if it could not

    @property
    def image_id(self) -> str:
        return self.created[0]

    @property
    def left_behind(self) -> list[str]:
        return [i for i in self.created if i not in self.gone]

    def walk(self) -> None:
        if self._ctx.token is not None:
            try:
                token = self._ctx.token()
            except CredentialError as exc:
                self.sign_in_failure = f"the probe could not sign in ({exc})"
                return
            # The token replaces the user id: the API knows the probe by the token's subject.
            self._headers = {"Authorization": f"Bearer {token}", SYNTHETIC_HEADER: "1"}
        actions: dict[str, Callable[[], None]] = {
            "upload": self._upload,
            "replay": self._replay,
            "get": self._get,
            "thumbnail": self._thumbnail,
            "list": self._list,
            "delete": self._delete,
            "get_deleted": self._get_deleted,
        }
        for name in STEPS:
            if not self._step(name, actions[name]):
                return

    def clean_up(self) -> None:
        if self.left_behind or (self.upload_ambiguous and not self.created):
            self._step("cleanup", self._clean)

    def _step(self, name: str, action: Callable[[], None]) -> bool:
        started = self._ctx.clock()
        try:
            action()
        except _StepFailed as exc:
            self.steps.append(
                StepResult(
                    name=name, ok=False, seconds=self._ctx.clock() - started, reason=exc.reason
                )
            )
            return False
        self.steps.append(StepResult(name=name, ok=True, seconds=self._ctx.clock() - started))
        return True

    # -- requests ---------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, api: bool = True, **kw: Any) -> HttpResponse:
        headers = {**self._headers, **kw.pop("headers", {})} if api else {}
        try:
            response = self._ctx.http.request(
                method, url, headers=headers, timeout=self._timeout, retries=False, **kw
            )
        except (http_errors.HTTPError, OSError) as exc:
            failure = transport_failure(exc, url=url, timeout=self._timeout)
            raise _StepFailed(
                failure.reason, unreachable=failure.unreachable, ambiguous=failure.ambiguous
            ) from exc
        if api and response.status == 401 and self.sign_in_failure is None:
            self.sign_in_failure = f"the probe could not sign in (401): {describe(response)}"
            raise _StepFailed(self.sign_in_failure)
        return response

    def _post_image(self) -> HttpResponse:
        return self._send(
            "POST",
            f"{self._base}/images",
            headers={"Idempotency-Key": self._key},
            fields={"file": ("watchtower-probe.png", self._image, "image/png")},
        )

    def _image_url(self, image_id: str | None = None) -> str:
        return f"{self._base}/images/{quote(image_id or self.image_id, safe='')}"

    def _learn(self, response: HttpResponse) -> dict[str, Any]:
        """The answer's JSON object; any image id a 2xx answer names is remembered for cleanup."""
        body = _json_object(response) or {}
        image_id = body.get("id")
        ok = 200 <= response.status < 300
        if ok and isinstance(image_id, str) and image_id and image_id not in self.created:
            self.created.append(image_id)
        return body

    # -- steps ------------------------------------------------------------------------------------

    def _upload(self) -> None:
        try:
            response = self._post_image()
        except _StepFailed as exc:
            self.unreachable, self.upload_ambiguous = exc.unreachable, exc.ambiguous
            raise
        body = self._learn(response)
        if response.status != 201:
            raise _StepFailed(f"expected 201, got {describe(response)}")
        if not self.created:
            raise _StepFailed("HTTP 201 without an image id in the answer")
        self._body = body

    def _replay(self) -> None:
        response = self._post_image()
        body = self._learn(response)
        if response.status == 201 and body.get("id") != self.image_id:
            raise _StepFailed(
                f"expected 200 and image {self.image_id}, got HTTP 201 and a second "
                f"image {body.get('id')}: the Idempotency-Key was not honoured"
            )
        if response.status != 200:
            raise _StepFailed(f"expected 200, got {describe(response)}")
        if body.get("id") != self.image_id:
            raise _StepFailed(
                f"the replay answered image {body.get('id')!r}, not {self.image_id!r}"
            )
        if response.headers.get("Idempotent-Replayed", "").lower() != "true":
            raise _StepFailed("the replay's answer lacks 'Idempotent-Replayed: true'")

    def _get(self) -> None:
        response = self._send("GET", self._image_url())
        if response.status != 200:
            raise _StepFailed(f"expected 200, got {describe(response)}")
        body = _json_object(response) or {}
        if body.get("id") != self.image_id:
            raise _StepFailed(f"answered image {body.get('id')!r}, not {self.image_id!r}")
        sha256 = body.get("sha256")
        if sha256 is not None and sha256 != hashlib.sha256(self._image).hexdigest():
            raise _StepFailed("the stored image's sha256 differs from the uploaded bytes")
        self._body = body

    def _thumbnail(self) -> None:
        thumbnail = self._body.get("thumbnail")
        url = thumbnail.get("url") if isinstance(thumbnail, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _StepFailed(f"the API gave no absolute thumbnail URL (thumbnail.url={url!r})")
        # No API headers: the CDN or a presigned URL is fetched as a browser would.
        response = self._send("GET", url, api=False)
        if response.status != 200:
            raise _StepFailed(f"expected 200 from the thumbnail URL, got {describe(response)}")
        try:
            with Image.open(io.BytesIO(response.data)) as image:
                image.load()
                size = image.size
        except Exception as exc:  # any decoder error means the same: it does not decode
            raise _StepFailed(f"the thumbnail does not decode: {exc}") from exc
        if max(size) > MAX_THUMBNAIL_PX:
            raise _StepFailed(
                f"the thumbnail is {size[0]}x{size[1]} px, over {MAX_THUMBNAIL_PX} px"
            )

    def _list(self) -> None:
        cursor: str | None = None
        seen = 0
        for _ in range(_LIST_PAGES):
            url = f"{self._base}/images?limit={_LIST_LIMIT}"
            if cursor:
                url += f"&cursor={quote(cursor, safe='')}"
            response = self._send("GET", url)
            if response.status != 200:
                raise _StepFailed(f"expected 200, got {describe(response)}")
            body = _json_object(response) or {}
            items = body.get("items")
            if not isinstance(items, list):
                raise _StepFailed("the gallery's answer has no 'items' list")
            if any(isinstance(i, dict) and i.get("id") == self.image_id for i in items):
                return
            seen += len(items)
            cursor = body.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                break
        raise _StepFailed(
            f"image {self.image_id} is not in the gallery ({seen} newest images looked at)"
        )

    def _delete(self) -> None:
        response = self._send("DELETE", self._image_url())
        if response.status != 204:
            raise _StepFailed(f"expected 204, got {describe(response)}")
        self.gone.add(self.image_id)

    def _get_deleted(self) -> None:
        response = self._send("GET", self._image_url())
        if response.status == 404:
            return
        if response.status == 200:
            self.gone.discard(self.image_id)  # the delete did not hold: cleanup tries again
            raise _StepFailed("expected 404, got HTTP 200: the deleted image is still served")
        raise _StepFailed(f"expected 404, got {describe(response)}")

    def _clean(self) -> None:
        if self.upload_ambiguous and not self.created:
            self._recover_upload()
        problems = []
        for image_id in self.left_behind:
            try:
                response = self._send("DELETE", self._image_url(image_id))
            except _StepFailed as exc:
                problems.append(f"image {image_id} left behind: {exc.reason}")
                continue
            if response.status in (204, 404):  # 404: already gone
                self.gone.add(image_id)
            else:
                problems.append(f"image {image_id} left behind: {describe(response)}")
        if problems:
            raise _StepFailed("; ".join(problems))

    def _recover_upload(self) -> None:
        """The upload's answer was lost, so it may have landed: replaying its key names the image.

        Either answer is safe: 200 names the image that landed, 201 means it had not and this
        request stored it; both are deleted next.
        """
        left = f"if it landed, it is left behind under Idempotency-Key {self._key}"
        try:
            response = self._post_image()
        except _StepFailed as exc:
            raise _StepFailed(
                f"upload outcome unknown, its replay failed ({exc.reason}); {left}"
            ) from exc
        self._learn(response)
        if not self.created:
            raise _StepFailed(
                f"upload outcome unknown, its replay answered {describe(response)}; {left}"
            )


def _json_object(response: HttpResponse) -> dict[str, Any] | None:
    try:
        body = json.loads(response.data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def describe(response: HttpResponse) -> str:
    """`HTTP 503 metadata_unavailable: a backing service ...`: the status and the API's error."""
    text = f"HTTP {response.status}"
    error = (_json_object(response) or {}).get("error")
    if isinstance(error, dict):
        if error.get("code"):
            text += f" {error['code']}"
        if error.get("message"):
            message = str(error["message"])
            text += f": {message[:200]}{'…' if len(message) > 200 else ''}"
    return text
