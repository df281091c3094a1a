"""S3: originals and thumbnails."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from image_core.errors import StorageError


class S3Storage:
    """Adapter over a ready boto3 S3 client (thread-safe; the caller owns it)."""

    def __init__(self, client: Any, bucket: str, *, presign_seconds: int = 3600) -> None:
        self._client = client
        self.bucket = bucket
        self._presign_seconds = presign_seconds

    def bootstrap(self, region: str) -> bool:
        """Create the bucket; True when it was created now."""
        try:
            # In us-east-1 CreateBucket answers 200 for a bucket we already own: ask first.
            self._client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"cannot create bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot create bucket {self.bucket!r}: {exc}") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise StorageError(f"cannot create bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot create bucket {self.bucket!r}: {exc}") from exc
        return True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl="public, max-age=31536000, immutable",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"cannot write object {key!r} to bucket {self.bucket!r}: {exc}"
            ) from exc

    def delete(self, keys: list[str]) -> None:
        """Delete `keys`; missing ones are fine (S3 deletes are idempotent)."""
        if not keys:
            return
        try:
            answer = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"cannot delete {keys!r} from bucket {self.bucket!r}: {exc}"
            ) from exc
        if answer.get("Errors"):
            failed = [e["Key"] for e in answer["Errors"]]
            raise StorageError(f"cannot delete {failed!r} from bucket {self.bucket!r}")

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(
                f"cannot read object {key!r} in bucket {self.bucket!r}: {exc}"
            ) from exc
        return True

    def presigned_url(self, key: str) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self._presign_seconds,
        )
        return url
