"""The image API against its own /openapi.json, with schemathesis, over the moto server.

Requests that fit the document (positive) and requests that break it on purpose (negative), for
every operation: never a 5xx (no backing service is down here, so not even the documented 503),
every answer as the document describes it (status, content type, body schema, headers), and
nothing half-written in S3 and DynamoDB after any of them.

The schema is loaded from the running app's /openapi.json, not from the module that builds it:
what is fuzzed is what clients read. Stateful sequences (the document's links from an upload to
the read and delete of what it stored) are not run: over stores shared by the examples they took
40 s, and hypothesis could not replay them deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from image_core.api import create_app
from image_core.app import Components
from image_core.openapi import document
from tests.helpers import image_bytes
from tests.image_core.fuzz.common import assert_nothing_half_written, fuzz_settings


def _cases() -> list[tuple[str, str, str]]:
    """(path, method, mode) for every operation; negative only where there is input to break."""
    cases = []
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            cases.append((path, method, "positive"))
            if item.get("parameters") or operation.get("parameters") or "requestBody" in operation:
                cases.append((path, method, "negative"))
    return cases


SEED = 20261127
# A request can fit the document and still be wrong in ways no JSON schema says: bytes that are
# not an image (415), a cursor the API never issued (400). The document lists those answers;
# schemathesis' "schema-valid data is accepted" check cannot know them.
EXCLUDED = [positive_data_acceptance]


@pytest.fixture
def image_files() -> Iterator[None]:
    """`format: binary` drawn from real images as well as from arbitrary bytes, so that
    schema-valid uploads succeed too and their 201 is checked against the document."""
    from schemathesis.specs.openapi.formats import unregister_string_format

    real = [
        image_bytes("JPEG", (64, 48)),
        image_bytes("PNG", (30, 90), (1, 2, 3, 4)),
        image_bytes("GIF", (20, 20)),
        image_bytes("WEBP", (40, 10)),
    ]
    schemathesis.openapi.format("binary", st.one_of(st.sampled_from(real), st.binary()))
    yield
    unregister_string_format("binary")


@pytest.fixture
def components(make_components: Callable[..., Components]) -> Components:
    return make_components(max_bytes=64 * 1024)


@pytest.fixture
def api_schema(image_files: None, components: Components) -> Any:
    app = create_app(components=components)
    config = schemathesis.Config.from_dict({"seed": SEED})
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)


@pytest.mark.parametrize(("path", "method", "mode"), _cases())
@fuzz_settings(max_examples=30)
@given(data=st.data())
def test_the_image_api_answers_as_its_document_says(
    api_schema: Any,
    components: Components,
    path: str,
    method: str,
    mode: str,
    data: st.DataObject,
) -> None:
    operation = api_schema[path][method]
    case = data.draw(operation.as_strategy(schemathesis.GenerationMode(mode)))
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text[:300])
    case.validate_response(
        response, additional_checks=[not_a_server_error], excluded_checks=EXCLUDED
    )
    assert_nothing_half_written(components)
