"""The sandbox: the image service and everything it runs on, on loopback, with no AWS account.

moto stands in for AWS (table, bucket, CloudFront distribution, Lambda function configuration and
log group); redis-server and a throwaway PostgreSQL run when their binaries are installed (and the
stack says plainly what runs without them); the image API runs as its own process, exactly as
`python -m image_core serve` runs, behind a gateway that stands in for API Gateway and Lambda.
Around it: the flag follower, a traffic generator of a few users, the telemetry simulator for what
moto cannot produce, and the scenarios that break one component at a time.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from watchtower.sandbox import resources, servers
from watchtower.sandbox.flag_follower import FlagFollower
from watchtower.sandbox.gateway import FLAG, ImageApi, Invocations, image_api_environment
from watchtower.sandbox.issuer import LocalIssuer
from watchtower.sandbox.resources import SANDBOX_CREDENTIALS, Resources
from watchtower.sandbox.scenarios import SCENARIOS, ScenarioController
from watchtower.sandbox.servers import Server, ServerUnavailable
from watchtower.sandbox.telemetry import SIMULATED, LogFormat, TelemetrySimulator
from watchtower.sandbox.traffic import TrafficGenerator

S = TypeVar("S", bound=Server)

TABLE = "images"
BUCKET = "images"
FUNCTION = "image-api"
ALIAS = "live"  # traffic goes through it, as in production (WATCHTOWER_LAMBDA_ALIAS)
LEGACY_TABLE = "gallery_images"  # IMAGE_LEGACY_TABLE and WATCHTOWER_LEGACY_TABLE
REGION = "us-east-1"
MISSING_BUCKET = f"{BUCKET}-that-does-not-exist"


@dataclass
class Stack:
    moto: servers.MotoServer
    redis: servers.RedisServer | None
    postgres: servers.PostgresServer | None
    image_api: ImageApi
    resources: Resources
    scenarios: ScenarioController
    follower: FlagFollower
    telemetry: TelemetrySimulator | None
    traffic: TrafficGenerator | None
    workdir: Path
    issuer: LocalIssuer  # signs the users' and the probe's bearer tokens
    notes: list[str] = field(default_factory=list)
    table: str = TABLE
    bucket: str = BUCKET
    legacy_table: str = LEGACY_TABLE
    region: str = REGION
    _children: list[Server] = field(default_factory=list)
    _clients: list[Any] = field(default_factory=list)

    @property
    def image_api_url(self) -> str:
        return self.image_api.url

    def describe(self) -> dict[str, Any]:
        """What runs, what is simulated and which scenario plays: for people and tests."""
        env = self.image_api.environment
        return {
            **self.scenarios.describe(),
            "simulated": list(SIMULATED) if self.telemetry is not None else [],
            "notes": list(self.notes),
            "endpoints": {
                "image_api": self.image_api.url,
                "aws": self.moto.url,
                "redis": self.redis.url if self.redis else None,
                "postgres": self.postgres.url if self.postgres else None,
            },
            "function": self.resources.function,
            "alias": self.resources.alias,
            "served_version": self.follower.served_version,
            "distribution_id": self.resources.distribution_id,
            "image_api": {
                "process": self.image_api.generation,
                "dual_write": env.get(FLAG) == "true",
                "bucket": env.get("IMAGE_BUCKET"),
                "follows_function_flag": not self.follower.held,
            },
        }

    def stop(self) -> None:
        for worker in (self.traffic, self.telemetry, self.follower):
            if worker is not None:
                worker.stop()
        self.image_api.stop()
        for client in self._clients:
            client.close()
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Levers:
    """The scenarios' levers, moved through the moto server and the image API (`Levers`).

    The flag is what the alias serves: a change is written, published as a version and the alias
    moved to it, as a deployment (and the runbooks) do; without an alias, `$LATEST` is written.
    """

    def __init__(
        self, lambda_client: Any, function: str, image_api: ImageApi, alias: str | None = None
    ) -> None:
        self._lambda = lambda_client
        self._function = function
        self._alias = alias
        self._image_api = image_api
        self.follower: FlagFollower | None = None

    def _variables(self) -> dict[str, str]:
        qualifier = {}
        if self._alias:
            answer = self._lambda.get_alias(FunctionName=self._function, Name=self._alias)
            qualifier = {"Qualifier": str(answer["FunctionVersion"])}
        answer = self._lambda.get_function_configuration(FunctionName=self._function, **qualifier)
        return dict((answer.get("Environment") or {}).get("Variables") or {})

    def function_flag(self) -> str | None:
        return self._variables().get(FLAG)

    def set_function_flag(self, raw: str | None) -> None:
        variables = self._variables()
        if variables.get(FLAG) == raw:
            # Already what serves: no new version, so the alias keeps the one a flip published
            # (whose description records the version to roll back to).
            return
        if raw is None:
            variables.pop(FLAG, None)
        else:
            variables[FLAG] = raw
        self._lambda.update_function_configuration(
            FunctionName=self._function, Environment={"Variables": variables}
        )
        if self._alias:
            version = self._lambda.publish_version(
                FunctionName=self._function, Description=f"scenario: {FLAG}={raw}"
            )["Version"]
            self._lambda.update_alias(
                FunctionName=self._function, Name=self._alias, FunctionVersion=str(version)
            )

    def hold_image_api(self, held: bool) -> None:
        assert self.follower is not None
        self.follower.hold(held)

    def restart_image_api(
        self, *, dual_write: bool | None = None, bucket_exists: bool | None = None
    ) -> None:
        changes = {}
        if dual_write is not None:
            changes[FLAG] = "true" if dual_write else "false"
        if bucket_exists is not None:
            changes["IMAGE_BUCKET"] = BUCKET if bucket_exists else MISSING_BUCKET
        reason = ", ".join(f"{k}={v}" for k, v in changes.items())
        self._image_api.restart(f"scenario: {reason}", **changes)


def start(
    *,
    image_api_port: int | None = None,
    dual_write: bool = True,
    scenario: str = "healthy",
    traffic_rate: float = 1.0,
    telemetry: bool = True,
    log_format: LogFormat = "text",
    telemetry_interval: float = 5.0,
    flag_poll_seconds: float = 1.0,
    metrics_flush_seconds: int = 5,
    log: Callable[[str], None] = print,
) -> Stack:
    """Start everything; on any failure, stop what was started and raise."""
    if scenario not in SCENARIOS:
        raise ValueError(f"no scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    children: list[Server] = []
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-sandbox-"))
    image_api: ImageApi | None = None
    workers: list[Any] = []
    try:
        moto = servers.start_moto()
        children.append(moto)
        moto.configure_lambda_without_docker()
        log(f"moto (AWS emulator)     {moto.url}")
        redis = _optional(servers.start_redis, "Redis", "the gallery cache is off", notes, log)
        if redis:
            children.append(redis)
            log(f"redis-server            {redis.url}")
        postgres = None
        if dual_write:
            postgres = _optional(
                servers.start_postgres,
                "PostgreSQL",
                f"dual-write to {LEGACY_TABLE} is off, and the legacy-writes scenario unavailable",
                notes,
                log,
            )
        if postgres:
            children.append(postgres)
            log(f"PostgreSQL (legacy)     {postgres.url}")
        issuer = LocalIssuer(workdir / "issuer.key")
        env = {
            **SANDBOX_CREDENTIALS,
            **issuer.image_api_environment(),
            "AWS_ENDPOINT_URL": moto.url,
            "IMAGE_TABLE": TABLE,
            "IMAGE_BUCKET": BUCKET,
            "IMAGE_REGION": REGION,
            "IMAGE_LEGACY_TABLE": LEGACY_TABLE,
            # Callers sign in with bearer tokens of the local issuer, as behind a real one.
            "IMAGE_TRUST_USER_HEADER": "false",
            "IMAGE_SYNTHETIC_USER_IDS": "watchtower-probe",  # the probe token's subject
            "IMAGE_METRICS_SINK": "cloudwatch",
            "IMAGE_METRICS_FLUSH_SECONDS": str(metrics_flush_seconds),
            FLAG: "true" if postgres else "false",
        }
        if redis:
            env["IMAGE_REDIS_URL"] = redis.url
        if postgres:
            env["IMAGE_LEGACY_DATABASE_URL"] = postgres.url
        bootstrap = subprocess.run(
            [sys.executable, "-m", "image_core", "bootstrap"],
            env=image_api_environment(env),
            capture_output=True,
            text=True,
        )
        if bootstrap.returncode != 0:
            raise ServerUnavailable(f"image core bootstrap failed: {bootstrap.stderr.strip()}")
        made = resources.create(
            moto.url,
            function=FUNCTION,
            table=TABLE,
            bucket=BUCKET,
            dual_write=postgres is not None,
            region=REGION,
            alias=ALIAS,
        )
        log(
            f"AWS resources (in moto) table {TABLE}, bucket {BUCKET}, CloudFront distribution "
            f"{made.distribution_id}, Lambda function {made.function} "
            f"({FLAG}={env[FLAG]}; alias {made.alias} serves version {made.version}), "
            f"log group {made.log_group}"
        )

        invocations = Invocations()
        image_api = ImageApi(env, port=image_api_port, record=invocations.add, workdir=workdir)
        image_api.start()
        log(f"image API (gateway)     {image_api.url}")

        clients = {
            service: resources.client(service, moto.url, region=REGION)
            for service in ("lambda", "cloudwatch", "logs")
        }
        lambda_client = clients["lambda"]
        levers = _Levers(lambda_client, made.function, image_api, alias=made.alias)
        follower = FlagFollower(
            lambda_client,
            made.function,
            image_api,
            postgres=postgres is not None,
            alias=made.alias,
            interval=flag_poll_seconds,
        )
        follower.served_version = made.version
        levers.follower = follower
        controller = ScenarioController(levers, postgres=postgres is not None)
        follower.start()
        workers.append(follower)

        simulator = None
        if telemetry:
            simulator = TelemetrySimulator(
                cloudwatch=clients["cloudwatch"],
                logs=clients["logs"],
                invocations=invocations,
                profile=controller.profile,
                table=TABLE,
                distribution_id=made.distribution_id,
                log_group=made.log_group,
                log_format=log_format,
                interval=telemetry_interval,
                rng=random.Random(),
                version=lambda: follower.served_version,
            )
            simulator.start()
            workers.append(simulator)
        traffic = None
        if traffic_rate > 0:
            traffic = TrafficGenerator(image_api.url, rate=traffic_rate, sign=issuer.token)
            traffic.start()
            workers.append(traffic)
        if scenario != "healthy":
            controller.switch(scenario)
        return Stack(
            moto=moto,
            redis=redis,
            postgres=postgres,
            image_api=image_api,
            resources=made,
            scenarios=controller,
            follower=follower,
            telemetry=simulator,
            traffic=traffic,
            workdir=workdir,
            issuer=issuer,
            notes=notes,
            _children=children,
            _clients=list(clients.values()),
        )
    except BaseException:
        for worker in reversed(workers):
            worker.stop()
        if image_api is not None:
            image_api.stop()
        for child in reversed(children):
            child.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _optional(
    starter: Callable[[], S], what: str, without: str, notes: list[str], log: Callable[[str], None]
) -> S | None:
    try:
        server = starter()
    except ServerUnavailable as exc:
        note = f"{what} is not running ({exc}); {without}"
        notes.append(note)
        log(f"note: {note}")
        return None
    return server
