"""Issue 14: the sandbox serves its function through an alias, as production does. The resources
publish a version and point `live` at it; the flag follower follows the flag of the version the
alias serves, never `$LATEST` alone; the scenarios' flag lever publishes and moves the alias; the
simulated REPORT lines go to the log streams of the version that serves."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watchtower.checks.lambda_cold_starts import stream_version
from watchtower.sandbox import resources
from watchtower.sandbox.flag_follower import FlagFollower
from watchtower.sandbox.gateway import FLAG, ImageApi, Invocation
from watchtower.sandbox.scenarios import ScenarioController
from watchtower.sandbox.servers import MotoServer
from watchtower.sandbox.stack import ALIAS, _Levers
from watchtower.sandbox.telemetry import HEALTHY, Containers, simulate

FUNCTION = "image-api"


@pytest.fixture
def lam(moto: MotoServer) -> Iterator[object]:
    client = resources.client("lambda", moto.url)
    yield client
    client.close()


def test_the_sandbox_function_is_served_through_an_alias(moto: MotoServer, lam: object) -> None:
    made = resources.create(
        moto.url, function=FUNCTION, table="images", bucket="images", dual_write=True, alias=ALIAS
    )
    assert (made.alias, made.version) == ("live", "1")
    alias = lam.get_alias(FunctionName=FUNCTION, Name="live")  # type: ignore[attr-defined]
    assert alias["FunctionVersion"] == "1"


def test_the_follower_follows_the_alias_not_latest(
    moto: MotoServer, lam: object, tmp_path: Path
) -> None:
    resources.create(
        moto.url, function=FUNCTION, table="images", bucket="images", dual_write=True, alias=ALIAS
    )
    # Never started: no step below needs a restart (the flag the process runs with is the
    # served one throughout), which is the point.
    image_api = ImageApi({FLAG: "true"}, workdir=tmp_path)
    follower = FlagFollower(lam, FUNCTION, image_api, postgres=True, alias=ALIAS)
    levers = _Levers(lam, FUNCTION, image_api, alias=ALIAS)

    follower.step()
    assert follower.served() == ("1", {**follower.served()[1], FLAG: "true"})
    assert follower.served_version == "1"

    # Writing $LATEST alone changes nothing users see: the alias still serves version 1, flag on.
    lam.update_function_configuration(  # type: ignore[attr-defined]
        FunctionName=FUNCTION, Environment={"Variables": {FLAG: "false"}}
    )
    follower.step()
    version, environment = follower.served()
    assert (version, environment[FLAG]) == ("1", "true")
    assert image_api.generation == 0  # no restart was attempted
    assert levers.function_flag() == "true"

    # The lever flips what the alias serves: written, published, the alias moved.
    levers.set_function_flag("false")
    version, environment = follower.served()
    assert (version, environment[FLAG]) == ("2", "false")
    assert levers.function_flag() == "false"
    levers.set_function_flag("true")
    follower.step()  # version 3 serves the flag on, as the process runs: followed, no restart
    assert follower.served_version == "3"
    assert image_api.generation == 0


def test_simulated_report_lines_go_to_the_served_versions_streams() -> None:
    containers = Containers()
    now = datetime.now(UTC)

    def tick(version: str) -> dict[str, list[dict[str, object]]]:
        invocation = Invocation(
            request_id=f"r-{version}",
            ended_at=now.timestamp(),
            duration_ms=40.0,
            generation=1,
            method="GET",
            path="/images",
            status=200,
        )
        data = simulate(
            HEALTHY,
            [invocation],
            now=now,
            seconds=5,
            table="images",
            distribution_id="E1",
            containers=containers,
            fmt="text",
            rng=random.Random(1),
            version=version,
        )
        assert data.cold_starts == 1  # a first container, then a new one for the new version
        return data.log_events

    first, second = tick("1"), tick("2")
    assert [stream_version(s) for s in first] == ["1"]
    assert [stream_version(s) for s in second] == ["2"]


def test_a_rehearsal_turns_dual_write_back_on_before_it_flips(
    moto: MotoServer, lam: object, tmp_path: Path
) -> None:
    # After a flip (or a signed rehearsal) the alias serves the flag off; the next rehearsal's
    # flip would record that version as the one to roll back to. It turns the flag on first.
    resources.create(
        moto.url, function=FUNCTION, table="images", bucket="images", dual_write=True, alias=ALIAS
    )
    levers = _Levers(lam, FUNCTION, ImageApi({FLAG: "true"}, workdir=tmp_path), alias=ALIAS)
    scenarios = ScenarioController(levers, postgres=True)
    assert scenarios.dual_write_on() is False  # already on: nothing published
    assert lam.get_alias(FunctionName=FUNCTION, Name=ALIAS)["FunctionVersion"] == "1"  # type: ignore[attr-defined]
    levers.set_function_flag("false")
    assert scenarios.dual_write_on() is True
    assert levers.function_flag() == "true"
    alias = lam.get_alias(FunctionName=FUNCTION, Name=ALIAS)  # type: ignore[attr-defined]
    assert alias["FunctionVersion"] == "3"  # a version of its own, as a deployment would be
