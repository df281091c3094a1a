"""`python -m image_core bootstrap | serve`: idempotent set-up; bad settings stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import urllib3
from click.testing import CliRunner

from image_core.__main__ import main
from watchtower.sandbox import servers

# Every variable the image core reads, cleared so the developer's own environment cannot leak in.
CLEARED = {
    name: None
    for name in (
        "IMAGE_TABLE",
        "IMAGE_BUCKET",
        "IMAGE_REGION",
        "IMAGE_REDIS_URL",
        "IMAGE_LEGACY_DATABASE_URL",
        "ENABLE_DYNAMODB_DUAL_WRITE",
        "IMAGE_MAX_BYTES",
        "IMAGE_MAX_PIXELS",
        "IMAGE_METRICS_SINK",
    )
}


@pytest.fixture
def env(moto: servers.MotoServer) -> dict[str, str | None]:
    return {**CLEARED, "AWS_ENDPOINT_URL": moto.url, "IMAGE_METRICS_SINK": "none"}


def run(args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_bootstrap_creates_then_finds_everything(
    env: dict[str, str | None], moto: servers.MotoServer
) -> None:
    env = {**env, "IMAGE_TABLE": "cli-images", "IMAGE_BUCKET": "cli-bucket"}
    code, out, _ = run(["bootstrap"], env)
    assert code == 0
    assert out.splitlines() == ["table cli-images: created", "bucket cli-bucket: created"]
    code, out, _ = run(["bootstrap"], env)
    assert code == 0
    assert out.splitlines() == ["table cli-images: exists", "bucket cli-bucket: exists"]

    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=moto.url)
    try:
        table = dynamodb.describe_table(TableName="cli-images")["Table"]
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by_user"]
        ttl = dynamodb.describe_time_to_live(TableName="cli-images")
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    finally:
        dynamodb.close()


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"IMAGE_MAX_BYTES": "abc"}, "IMAGE_MAX_BYTES"),
        ({"IMAGE_MAX_PIXELS": "0"}, "IMAGE_MAX_PIXELS"),
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "maybe"}, "ENABLE_DYNAMODB_DUAL_WRITE"),
        ({"ENABLE_DYNAMODB_DUAL_WRITE": "true"}, "IMAGE_LEGACY_DATABASE_URL"),
        ({"IMAGE_REDIS_URL": "localhost:6379"}, "IMAGE_REDIS_URL"),
        ({"IMAGE_METRICS_SINK": "statsd"}, "IMAGE_METRICS_SINK"),
    ],
)
@pytest.mark.parametrize("command", ["bootstrap", "serve"])
def test_an_invalid_setting_stops_start_up_naming_the_variable(
    env: dict[str, str | None], command: str, variables: dict[str, str], named: str
) -> None:
    code, out, err = run(
        [command, "--port", "1"] if command == "serve" else [command],
        {
            **env,
            **variables,
        },
    )
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0]
    assert out == ""


def test_bootstrap_against_an_unreachable_endpoint_fails_with_a_message() -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{servers.free_port()}",
        "IMAGE_METRICS_SINK": "none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "image_core", "bootstrap"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot create table 'images'"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def served(moto: servers.MotoServer) -> Iterator[str]:
    """`python -m image_core serve` as a child process on a free port; returns its base URL."""
    port = servers.free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto.url,
        "IMAGE_TRUST_USER_HEADER": "1",
        "IMAGE_METRICS_SINK": "none",
    }
    subprocess.run(
        [sys.executable, "-m", "image_core", "bootstrap"], env=env, check=True, capture_output=True
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "image_core", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"serve exited with {process.returncode}"
            try:
                urllib3.request("GET", f"{base}/healthz", timeout=0.5, retries=False)
                break
            except urllib3.exceptions.HTTPError:
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_answers_http(served: str) -> None:
    health = urllib3.request("GET", f"{served}/healthz", timeout=5)
    assert health.status == 200 and health.json() == {"status": "ok"}
    gallery = urllib3.request("GET", f"{served}/images", headers={"X-User-Id": "u"}, timeout=5)
    assert gallery.status == 200 and gallery.json() == {"items": [], "next_cursor": None}
