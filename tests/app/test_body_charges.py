"""Bodies are charged for what reading them may hold: JSON whichever reader reads it, images at their working size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.codecs import fastjson, jsonbody
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import assert_problem

MiB = 1024 * 1024
SIZE = 400 * 1024  # charged 28 B/B by the fast reader: 11 MiB of a 16 MiB budget


def _filled(item: str, size: int = SIZE, key: str = "x") -> bytes:
    count = (size - 16) // (len(item) + 1)
    return (f'{{"{key}": [' + ",".join([item] * count) + "]}").encode()


@pytest.fixture
def small(weights_file: Path) -> Iterator[TestClient]:
    settings = Settings(
        weights=weights_file, memory_budget=16 * MiB, max_activation_points=10**6
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
    fastjson.keep_parsers(Settings().memory_budget)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", _filled("[0]")),
        ("/predict", _filled("[[]]")),
        ("/predict", _filled('{"a":{}}')),
        ("/predict", _filled("[0],0")),  # ragged: the fast reader declines it
        (
            "/v2/models/mnist/infer",
            b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 784], '
            b'"data": [' + ",".join(["[0]"] * (SIZE // 4)).encode() + b"]}]}",
        ),
        ("/activations/relu", _filled("[0]")),
    ],
    ids=["nested", "empty-arrays", "objects", "ragged", "v2-nested", "activations"],
)
def test_texts_of_many_small_objects_are_charged_what_orjson_makes_of_them(
    small: TestClient, path: str, body: bytes
) -> None:
    # What the general reader needs does not fit; what the fast reader needs did.
    left = 16 * MiB - small.app.state.budget.reserved
    assert 2 * len(body) + jsonbody.general_cost(body) > left
    assert 2 * len(body) + 28 * len(body) < left
    r = small.post(path, content=body, headers={"Content-Type": "application/json"})
    if path.startswith("/v2"):
        assert r.status_code == 413, r.text
        assert "reading the JSON text needs about" in r.json()["error"]
    else:
        assert_problem(r, 413, "reading the JSON text needs about")
    # The worker keeps serving, and a batch of the same size is read as before.
    rows = ",".join(["[" + ",".join(["0.5"] * 784) + "]"] * (SIZE // 3140))
    ok = small.post("/predict", content=f'{{"x": [{rows}]}}'.encode(),
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["labels"]) == SIZE // 3140


def test_numbers_cost_the_general_reader_less_than_the_fast_readers_charge() -> None:
    # Flat numbers and rows of them are never charged twice.
    for item in ("0", "0.35294117647058826", "[" + ",".join(["0"] * 784) + "]"):
        body = _filled(item)
        assert jsonbody.general_cost(body) <= 28 * len(body)


def test_the_general_cost_counts_every_kind_of_token() -> None:
    base = jsonbody.general_cost(b"{}")
    for token, cost in jsonbody.GENERAL_BYTES_PER_TOKEN.items():
        text = b"{}" + token * 10
        assert jsonbody.general_cost(text) == base + 10 * (
            cost + jsonbody.GENERAL_BYTES_PER_BYTE
        )


def _png_bytes(side: int, mode: str = "L") -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, (side, side)).save(out, "PNG")
    return out.getvalue()


def test_images_are_charged_for_the_pipeline_at_their_working_size() -> None:
    from app.admission import (
        IMAGE_BYTES_PER_PIXEL,
        IMAGE_WORK_BYTES,
        IMAGE_WORK_BYTES_PER_PIXEL,
    )
    from app.codecs.images import Upload, decode_work
    from core.images.decode import WORK_PIXELS

    def cost(side: int) -> int:
        return decode_work([Upload(None, _png_bytes(side))], 2**62).cost - 784 * 8

    # A digit costs next to nothing; measured peaks (python -m bench.hostile
    # costs, fresh worker) are under the charge at every size.
    assert cost(28) < 100_000
    for side, measured_mib in ((300, 7.1), (707, 22.4), (1000, 41.1), (1414, 79.0)):
        assert cost(side) >= measured_mib * MiB, side
    # Past the working size the pipeline's share stops growing; decoding's grows.
    work = WORK_PIXELS * IMAGE_WORK_BYTES_PER_PIXEL + IMAGE_WORK_BYTES
    assert cost(2000) == work
    assert cost(4000) == 4000 * 4000 * IMAGE_BYTES_PER_PIXEL > work
