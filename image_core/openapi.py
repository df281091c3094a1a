"""The OpenAPI 3.1 document served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_RETRY = {"$ref": "#/components/responses/Retry"}
# What a client does next with an image it stored: its id, as the same caller.
_IMAGE_LINKS = {
    name: {
        "operationId": operation,
        "parameters": {
            "path.image_id": "$response.body#/id",
            "header.X-User-Id": "$request.header.X-User-Id",
        },
    }
    for name, operation in (("GetImage", "getImage"), ("DeleteImage", "deleteImage"))
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _with_headers(response: dict[str, Any], *names: str) -> dict[str, Any]:
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in names}
    return {**response, "headers": headers}


def document() -> dict[str, Any]:
    image_id = {
        "name": "image_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    }
    image = {"$ref": "#/components/schemas/Image"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image service",
            "version": "1.0.0",
            "description": (
                "Uploads with thumbnails. The caller is identified by the API Gateway authorizer "
                "or, behind a trusted proxy, the X-User-Id header. Replaying an upload with the "
                "same Idempotency-Key and payload answers 200 (not 201) with the first body and "
                "`Idempotent-Replayed: true`, as the migration epic asks."
            ),
        },
        "paths": {
            "/images": {
                "post": {
                    "operationId": "uploadImage",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        },
                        {"$ref": "#/components/parameters/UserId"},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            **_with_headers(_json(image, "Stored"), "Location"),
                            "links": _IMAGE_LINKS,
                        },
                        "200": {
                            **_with_headers(
                                _json(image, "Replayed: the same Idempotency-Key and payload"),
                                "Location",
                                "Idempotent-Replayed",
                            ),
                            "links": _IMAGE_LINKS,
                        },
                        **{s: _ERROR for s in ("400", "401", "413", "415", "422")},
                        "409": _RETRY,
                        "503": _RETRY,
                    },
                },
                "get": {
                    "operationId": "listImages",
                    "parameters": [
                        {"$ref": "#/components/parameters/UserId"},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        },
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["items", "next_cursor"],
                                "properties": {
                                    "items": {"type": "array", "items": image},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "The caller's gallery, newest first",
                        ),
                        **{s: _ERROR for s in ("400", "401")},
                        "503": _RETRY,
                    },
                },
            },
            "/images/{image_id}": {
                "parameters": [image_id, {"$ref": "#/components/parameters/UserId"}],
                # 400: the caller's X-User-Id is malformed (invalid_user_id).
                "get": {
                    "operationId": "getImage",
                    "responses": {
                        "200": _json(image, "The image"),
                        **{s: _ERROR for s in ("400", "401", "404")},
                        "503": _RETRY,
                    },
                },
                "delete": {
                    "operationId": "deleteImage",
                    "responses": {
                        "204": {"description": "Deleted"},
                        **{s: _ERROR for s in ("400", "401", "404")},
                        "503": _RETRY,
                    },
                },
            },
            "/healthz": {
                "get": {"operationId": "health", "responses": {"200": {"description": "Serving"}}}
            },
        },
        "components": {
            "parameters": {
                "UserId": {
                    "name": "X-User-Id",
                    "in": "header",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@:+=-]{0,127}$",
                    },
                },
            },
            "schemas": {
                "Image": {
                    "type": "object",
                    "required": [
                        "id",
                        "content_type",
                        "size_bytes",
                        "width",
                        "height",
                        "created_at",
                        "original_url",
                        "thumbnail",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "content_type": {
                            "enum": ["image/jpeg", "image/png", "image/webp", "image/gif"]
                        },
                        "size_bytes": {"type": "integer"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "sha256": {"type": "string"},
                        "original_url": {"type": "string"},
                        "thumbnail": {
                            "type": "object",
                            "properties": {
                                "url": {"type": "string"},
                                "content_type": {"type": "string"},
                                "width": {"type": "integer"},
                                "height": {"type": "integer"},
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "headers": {
                "Location": {
                    "description": "The image's URL",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^/images/[0-9a-f]{32}$"},
                },
                "Idempotent-Replayed": {
                    "description": "This answer replays the first request's",
                    "required": True,
                    "schema": {"const": "true"},
                },
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
            },
            "responses": {
                "Error": _json({"$ref": "#/components/schemas/Error"}, "An error"),
                "Retry": _with_headers(
                    _json(
                        {"$ref": "#/components/schemas/Error"},
                        "Busy or a backing service is down: nothing was stored; retry later",
                    ),
                    "Retry-After",
                ),
            },
        },
    }
