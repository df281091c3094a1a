"""DynamoDB: image metadata records and Idempotency-Key claims, in one table.

Items (key `pk`, `sk`):
  IMAGE#<id> / META                the image record; `gsi1pk` USER#<user>, `gsi1sk` <created>#<id>
                                   put it on the `by_user` index, newest first
  IDEMPOTENCY#<user>#<key> / KEY   a claim; `expires_at` is the table's TTL attribute
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from image_core.errors import BadRequest, IdempotencyConflict, MetadataError
from image_core.idempotency import IdempotencyRecord, is_live
from image_core.model import ImageRecord, Page

INDEX = "by_user"
# A cursor's position: `gsi1sk`, <created, ISO 8601>#<image id>.
_CURSOR = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.+-]{8,32}#[0-9a-f]{32}")
_ser = TypeSerializer()
_de = TypeDeserializer()


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in item.items():
        value = _de.deserialize(v)
        out[k] = int(value) if isinstance(value, Decimal) and value == int(value) else value
    return out


class DynamoDbMetadata:
    """Adapter over a ready boto3 DynamoDB client (the caller owns it)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    # -- set-up -------------------------------------------------------------------------------

    def bootstrap(self) -> bool:
        """Create the table, its index and TTL; True when it was created now."""
        try:
            self._client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": n, "AttributeType": "S"}
                    for n in ("pk", "sk", "gsi1pk", "gsi1sk")
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": INDEX,
                        "KeySchema": [
                            {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                            {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise MetadataError(f"cannot create table {self.table!r}: {exc}") from exc
            return False
        except BotoCoreError as exc:
            raise MetadataError(f"cannot create table {self.table!r}: {exc}") from exc
        try:
            self._client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
            self._client.update_time_to_live(
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
        except (ClientError, BotoCoreError) as exc:
            raise MetadataError(f"cannot set up table {self.table!r}: {exc}") from exc
        return True

    # -- images -------------------------------------------------------------------------------

    def put_image(
        self,
        record: ImageRecord,
        *,
        claim: IdempotencyRecord | None = None,
        response_status: int = 201,
        response_body: dict[str, Any] | None = None,
    ) -> None:
        """Write the record; with a claim, complete it in the same transaction.

        The transaction fails, and nothing is written, if our claim was taken over meanwhile.
        """
        put = {
            "TableName": self.table,
            "Item": _image_item(record),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            if claim is None:
                self._client.put_item(**put)
                return
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": put},
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _idem_key(claim.user_id, claim.key),
                            "UpdateExpression": (
                                "SET #s = :done, response_status = :rs, response_body = :rb"
                            ),
                            "ConditionExpression": "#t = :token AND #s = :inprog",
                            "ExpressionAttributeNames": {"#s": "status", "#t": "token"},
                            "ExpressionAttributeValues": {
                                ":done": {"S": "completed"},
                                ":inprog": {"S": "in_progress"},
                                ":token": {"S": claim.token},
                                ":rs": {"N": str(response_status)},
                                ":rb": {"S": json.dumps(response_body, sort_keys=True)},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise IdempotencyConflict(
                    "the Idempotency-Key claim lapsed while this upload ran; retry it",
                    retry_after=1,
                ) from exc
            raise MetadataError(
                f"cannot write image {record.image_id!r} to table {self.table!r}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise MetadataError(f"cannot reach table {self.table!r}: {exc}") from exc

    def get_image(self, image_id: str) -> ImageRecord | None:
        try:
            answer = self._client.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"IMAGE#{image_id}"}, "sk": {"S": "META"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise MetadataError(
                f"cannot read image {image_id!r} from table {self.table!r}: {exc}"
            ) from exc
        item = answer.get("Item")
        return _image_record(_plain(item)) if item else None

    def delete_image(self, record: ImageRecord) -> bool:
        """Delete the record if it still exists; False when someone deleted it first."""
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"IMAGE#{record.image_id}"}, "sk": {"S": "META"}},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise MetadataError(
                f"cannot delete image {record.image_id!r} from table {self.table!r}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise MetadataError(f"cannot reach table {self.table!r}: {exc}") from exc
        return True

    def list_images(self, user_id: str, *, limit: int, cursor: str | None) -> Page:
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": INDEX,
            "KeyConditionExpression": "gsi1pk = :u",
            "ExpressionAttributeValues": {":u": {"S": f"USER#{user_id}"}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, user_id)
        try:
            answer = self._client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise MetadataError(
                f"cannot list images of user {user_id!r} in table {self.table!r}: {exc}"
            ) from exc
        items = [_image_record(_plain(i)) for i in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return Page(items=items, next_cursor=_encode_cursor(last) if last else None)

    # -- idempotency (IdempotencyStore) -------------------------------------------------------

    def claim(self, record: IdempotencyRecord, *, now: float) -> IdempotencyRecord | None:
        item = {
            **_idem_key(record.user_id, record.key),
            **_item(
                {
                    "status": record.status,
                    "token": record.token,
                    "fingerprint": record.fingerprint,
                    "expires_at": int(record.expires_at),
                    "in_progress_until": Decimal(repr(record.in_progress_until)),
                }
            ),
        }
        for _ in range(3):
            if self._put_claim(item, now):
                return None
            existing = self._get_claim(record.user_id, record.key)
            if existing is not None and is_live(existing, now=now):
                return existing
            # Released or lapsed between our write and our read: try again.
        raise MetadataError(
            f"the Idempotency-Key {record.key!r} changed hands three times "
            f"while being claimed in table {self.table!r}"
        )

    def _put_claim(self, item: dict[str, Any], now: float) -> bool:
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                # A record the TTL sweeper has not deleted yet, or a crashed claim, is free.
                ConditionExpression=(
                    "attribute_not_exists(pk) OR expires_at <= :now "
                    "OR (#s = :inprog AND in_progress_until <= :nowf)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":nowf": {"N": repr(now)},
                    ":inprog": {"S": "in_progress"},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise MetadataError(
                f"cannot claim an Idempotency-Key in table {self.table!r}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise MetadataError(f"cannot reach table {self.table!r}: {exc}") from exc
        return True

    def release(self, user_id: str, key: str, token: str) -> None:
        try:
            self._client.delete_item(
                TableName=self.table,
                Key=_idem_key(user_id, key),
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise MetadataError(
                    f"cannot release an Idempotency-Key in table {self.table!r}: {exc}"
                ) from exc
        except BotoCoreError as exc:
            raise MetadataError(f"cannot reach table {self.table!r}: {exc}") from exc

    def _get_claim(self, user_id: str, key: str) -> IdempotencyRecord | None:
        try:
            answer = self._client.get_item(
                TableName=self.table, Key=_idem_key(user_id, key), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise MetadataError(
                f"cannot read an Idempotency-Key in table {self.table!r}: {exc}"
            ) from exc
        if "Item" not in answer:
            return None
        v = _plain(answer["Item"])
        body = v.get("response_body")
        return IdempotencyRecord(
            user_id=user_id,
            key=key,
            fingerprint=v["fingerprint"],
            status=v["status"],
            token=v["token"],
            expires_at=float(v["expires_at"]),
            in_progress_until=float(v["in_progress_until"]),
            response_status=v.get("response_status"),
            response_body=json.loads(body) if body else None,
        )


def _idem_key(user_id: str, key: str) -> dict[str, Any]:
    return {"pk": {"S": f"IDEMPOTENCY#{user_id}#{key}"}, "sk": {"S": "KEY"}}


def _image_item(r: ImageRecord) -> dict[str, Any]:
    created = r.created_at.isoformat(timespec="microseconds")
    return _item(
        {
            "pk": f"IMAGE#{r.image_id}",
            "sk": "META",
            "gsi1pk": f"USER#{r.user_id}",
            "gsi1sk": f"{created}#{r.image_id}",
            "image_id": r.image_id,
            "user_id": r.user_id,
            "created_at": created,
            "content_type": r.content_type,
            "size_bytes": r.size_bytes,
            "width": r.width,
            "height": r.height,
            "original_key": r.original_key,
            "thumbnail_key": r.thumbnail_key,
            "thumbnail_content_type": r.thumbnail_content_type,
            "thumbnail_width": r.thumbnail_width,
            "thumbnail_height": r.thumbnail_height,
            "sha256": r.sha256,
            "synthetic": r.synthetic,
        }
    )


def _image_record(v: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        image_id=v["image_id"],
        user_id=v["user_id"],
        created_at=datetime.fromisoformat(v["created_at"]),
        content_type=v["content_type"],
        size_bytes=v["size_bytes"],
        width=v["width"],
        height=v["height"],
        original_key=v["original_key"],
        thumbnail_key=v["thumbnail_key"],
        thumbnail_content_type=v["thumbnail_content_type"],
        thumbnail_width=v["thumbnail_width"],
        thumbnail_height=v["thumbnail_height"],
        sha256=v["sha256"],
        synthetic=bool(v.get("synthetic", False)),
    )


def _encode_cursor(last: dict[str, Any]) -> str:
    # The user is not in the cursor: it is rebuilt from the caller, so no cursor reaches another
    # user's gallery.
    plain = _plain(last)
    raw = json.dumps(
        {
            "id": plain["image_id"] if "image_id" in plain else plain["pk"][6:],
            "at": plain["gsi1sk"],
        },
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, user_id: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        image_id, at = data["id"], data["at"]
        if not isinstance(image_id, str) or not isinstance(at, str):
            raise TypeError("cursor fields must be strings")
        # Only what _encode_cursor writes: DynamoDB refuses an empty or oversized key with a
        # ValidationException, which would answer 503 for what is the client's mistake.
        if not _CURSOR.fullmatch(at) or not at.endswith(f"#{image_id}"):
            raise ValueError("cursor fields are not a position in a gallery")
        datetime.fromisoformat(at.split("#", 1)[0])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "the cursor is malformed; pass next_cursor from the previous page",
            code="invalid_cursor",
        ) from exc
    return {
        "pk": {"S": f"IMAGE#{image_id}"},
        "sk": {"S": "META"},
        "gsi1pk": {"S": f"USER#{user_id}"},
        "gsi1sk": {"S": at},
    }
