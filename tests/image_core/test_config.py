"""Settings.from_env: defaults, parsing, and one environment variable per setting."""

from __future__ import annotations

import dataclasses

import pytest

from image_core import config
from image_core.config import Settings
from image_core.errors import ConfigError


def test_defaults_work_with_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.table == "images" and settings.bucket == "images"
    assert settings.region == "us-east-1"
    assert settings.aws_endpoint_url is None
    assert settings.redis_url is None and not settings.cache_enabled
    assert settings.legacy_database_url is None and settings.dual_write is False
    assert settings.trust_user_header is False
    assert settings.require_idempotency_key is False
    assert settings.max_bytes == 10 * 1024 * 1024
    assert settings.max_pixels == 50_000_000
    assert settings.cdn_base_url is None
    assert settings.idempotency_ttl_seconds == 24 * 3600
    assert settings.metrics_namespace == "ImageService"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "IMAGE_TABLE": " gallery ",
            "IMAGE_BUCKET": "gallery-bucket",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000/",
            "IMAGE_REDIS_URL": "redis://127.0.0.1:6379/0",
            "IMAGE_LEGACY_DATABASE_URL": "postgresql://u@127.0.0.1/db",
            "ENABLE_DYNAMODB_DUAL_WRITE": "TRUE",
            "IMAGE_TRUST_USER_HEADER": "1",
            "IMAGE_REQUIRE_IDEMPOTENCY_KEY": "yes",
            "IMAGE_MAX_BYTES": "2048",
            "IMAGE_MAX_PIXELS": "1000000",
            "IMAGE_CDN_BASE_URL": "https://cdn.example.com/",
            "IMAGE_IDEMPOTENCY_TTL_SECONDS": "3600",
            "IMAGE_METRICS_SINK": "EMF",
        }
    )
    assert settings.table == "gallery"
    assert settings.bucket == "gallery-bucket"
    assert settings.aws_endpoint_url == "http://127.0.0.1:5000"  # trailing slash dropped
    assert settings.redis_url == "redis://127.0.0.1:6379/0" and settings.cache_enabled
    assert settings.legacy_database_url == "postgresql://u@127.0.0.1/db"
    assert settings.dual_write is True
    assert settings.trust_user_header is True
    assert settings.require_idempotency_key is True
    assert settings.max_bytes == 2048
    assert settings.max_pixels == 1_000_000
    assert settings.cdn_base_url == "https://cdn.example.com"
    assert settings.idempotency_ttl_seconds == 3600
    assert settings.metrics_sink == "emf"


@pytest.mark.parametrize("raw, expected", [("true", True), ("On", True), ("0", False), ("", False)])
def test_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"IMAGE_TRUST_USER_HEADER": raw}).trust_user_header is expected


def test_blank_values_mean_the_default() -> None:
    settings = Settings.from_env({"IMAGE_MAX_BYTES": " ", "IMAGE_REDIS_URL": ""})
    assert settings.max_bytes == Settings().max_bytes and settings.redis_url is None


def test_region_falls_back_to_the_aws_variables() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    both = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert Settings.from_env(both).region == "eu-central-1"
    assert Settings.from_env({**both, "IMAGE_REGION": "us-west-2"}).region == "us-west-2"


@pytest.mark.parametrize(
    "variable, raw",
    [
        ("IMAGE_MAX_BYTES", "abc"),
        ("IMAGE_MAX_BYTES", "-5"),
        ("IMAGE_MAX_PIXELS", "0"),
        ("IMAGE_S3_WORKERS", "1.5"),
        ("ENABLE_DYNAMODB_DUAL_WRITE", "maybe"),
        ("IMAGE_TRUST_USER_HEADER", "2"),
        ("AWS_ENDPOINT_URL", "localhost:4566"),
        ("IMAGE_REDIS_URL", "http://127.0.0.1:6379"),
        ("IMAGE_LEGACY_DATABASE_URL", "mysql://db"),
        ("IMAGE_CDN_BASE_URL", "cdn.example.com"),
        ("IMAGE_METRICS_SINK", "prometheus"),
        ("IMAGE_MAX_DECODE_BYTES", "0"),
        ("IMAGE_DECODE_CONCURRENCY", "0"),
        ("IMAGE_DECODE_QUEUE", "-1"),
        ("IMAGE_DECODE_WAIT_SECONDS", "0"),
        ("IMAGE_DECODE_WAIT_SECONDS", "nan"),
        ("IMAGE_DECODE_WAIT_SECONDS", "inf"),
        ("IMAGE_SYNTHETIC_USER_IDS", "probe user"),
        ("IMAGE_SYNTHETIC_USER_IDS", "probe,,other"),
        ("IMAGE_STRIP_LOCATION", "sometimes"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", "fast,slow"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", "250,500.5"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", "0,500"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", "-250"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", "800,500"),  # not ascending
        ("IMAGE_LATENCY_THRESHOLDS_MS", "500,500"),  # not distinct
        ("IMAGE_LATENCY_THRESHOLDS_MS", "250,,500"),
        ("IMAGE_LATENCY_THRESHOLDS_MS", ",".join(str(100 * k) for k in range(1, 12))),  # 11
        ("IMAGE_LATENCY_THRESHOLDS_MS", "700000"),  # above ten minutes
    ],
)
def test_an_invalid_value_names_its_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: raw})


def test_security_settings_default_to_the_safe_side() -> None:
    settings = Settings.from_env({})
    assert settings.max_decode_bytes == 128 * 1024 * 1024
    assert (settings.decode_concurrency, settings.decode_queue) == (2, 16)
    assert settings.decode_wait_seconds == 10.0
    assert settings.synthetic_user_ids == ()  # the synthetic marker is believed from nobody
    assert settings.strip_location is True


def test_security_settings_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "IMAGE_MAX_DECODE_BYTES": "1048576",
            "IMAGE_DECODE_CONCURRENCY": "4",
            "IMAGE_DECODE_QUEUE": "0",
            "IMAGE_DECODE_WAIT_SECONDS": "0.5",
            "IMAGE_SYNTHETIC_USER_IDS": " watchtower-probe , canary@example.com,watchtower-probe",
            "IMAGE_STRIP_LOCATION": "false",
        }
    )
    assert settings.max_decode_bytes == 1_048_576
    assert (settings.decode_concurrency, settings.decode_queue) == (4, 0)
    assert settings.decode_wait_seconds == 0.5
    assert settings.synthetic_user_ids == ("watchtower-probe", "canary@example.com")
    assert settings.strip_location is False


def test_latency_thresholds_default_to_the_published_four_and_are_configurable() -> None:
    assert Settings.from_env({}).latency_thresholds_ms == (250, 500, 800, 1000)
    settings = Settings.from_env({"IMAGE_LATENCY_THRESHOLDS_MS": " 250, 500,847 ,1000"})
    assert settings.latency_thresholds_ms == (250, 500, 847, 1000)
    most = ",".join(str(100 * k) for k in range(1, 11))  # ten: the bound, accepted
    assert len(Settings.from_env({"IMAGE_LATENCY_THRESHOLDS_MS": most}).latency_thresholds_ms) == 10


def test_dual_write_needs_the_legacy_database() -> None:
    with pytest.raises(ConfigError, match="IMAGE_LEGACY_DATABASE_URL"):
        Settings.from_env({"ENABLE_DYNAMODB_DUAL_WRITE": "true"})
    # Off, the URL may be set or not.
    assert not Settings.from_env({"IMAGE_LEGACY_DATABASE_URL": "postgresql://h/db"}).dual_write


def test_every_setting_has_exactly_one_variable() -> None:
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert sorted(config._VARIABLES) == sorted(fields)
    names = [variable for variable, _ in config._VARIABLES.values()]
    assert len(names) == len(set(names))
    assert set(config.variables()) == set(names)


def test_every_variable_is_read() -> None:
    # Each variable, set to a valid non-default value, changes exactly its own field.
    valid = {
        str: "custom",
        bool: "true",
        int: "7",
        float: "2.5",
        tuple: "probe-user",
    }
    urls = {
        "aws_endpoint_url": "http://127.0.0.1:1",
        "redis_url": "redis://127.0.0.1:1/0",
        "legacy_database_url": "postgresql://h/db",
        "cdn_base_url": "https://cdn.example.com",
        "metrics_sink": "emf",
        "strip_location": "false",  # on by default
        "jwt_issuer": "https://issuer.test",
        "jwt_audience": "image-api",
        "jwt_jwks_url": "https://issuer.test/jwks.json",
        "jwt_shared_key": "k" * 40,
        "latency_thresholds_ms": "250,500,847,1000",
    }
    # The bearer verifier's variables are valid only together (an issuer, an audience, one key).
    verifier = {
        "IMAGE_JWT_ISSUER": "https://issuer.test",
        "IMAGE_JWT_AUDIENCE": "image-api",
        "IMAGE_JWT_SHARED_KEY": "k" * 40,
    }
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        variable, _ = config._VARIABLES[field.name]
        default = getattr(defaults, field.name)
        raw = urls.get(field.name) or valid[type(default)]
        env = {variable: raw}
        if field.name == "dual_write":
            env["IMAGE_LEGACY_DATABASE_URL"] = "postgresql://h/db"
        if field.name.startswith("jwt_"):
            env = {**verifier, **env}
            if field.name == "jwt_jwks_url":
                del env["IMAGE_JWT_SHARED_KEY"]
        changed = Settings.from_env(env)
        assert getattr(changed, field.name) != default, variable


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().table = "other"  # type: ignore[misc]
