"""The image service: uploads with thumbnails to S3, metadata in DynamoDB, a Redis gallery cache.

`image_core` never imports `watchtower`; Watchtower observes it through its HTTP API and the
AWS, Redis and PostgreSQL resources it runs on.
"""
