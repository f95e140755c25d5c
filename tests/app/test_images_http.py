"""Image uploads through HTTP: PNG bodies, multipart batches, preprocess modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bench.image_fidelity import render
from tests.app.conftest import assert_problem


def png(array: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert(mode).save(out, "PNG")
    return out.getvalue()


def labels_of(response) -> list[int]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["labels"] if "labels" in body else [body["label"]]


def test_png_uploads_agree_with_json_exactly(
    book_client: TestClient, mnist_test
) -> None:
    images, labels = mnist_test
    first = images  # all 10,000: the book's figure must hold through PNG uploads too
    json_labels: list[int] = []
    for start in range(0, len(first), 1000):  # ~6 MB of JSON, under the 8 MiB limit
        x = (first[start : start + 1000].reshape(-1, 784) / 255).astype(np.float32)
        json_labels += labels_of(book_client.post("/predict", json={"x": x.tolist()}))
    png_labels: list[int] = []
    for start in range(0, len(first), 50):  # multipart batches of 50, in upload order
        files = [
            ("file", (f"{i}.png", png(first[i]), "image/png"))
            for i in range(start, min(start + 50, len(first)))
        ]
        png_labels += labels_of(book_client.post("/predict", files=files))
    assert int((np.array(png_labels) == labels).sum()) == 9352
    assert png_labels == json_labels
    # A raw image/png body gives the same answer and the same probabilities.
    single = book_client.post(
        "/predict", content=png(first[0]), headers={"content-type": "image/png"}
    )
    as_json = book_client.post(
        "/predict", json={"x": (first[0] / 255).astype(np.float32).ravel().tolist()}
    )
    assert single.json() == as_json.json()


@pytest.mark.parametrize(
    "variants",
    [
        ("scan_rgb_280", "jpeg_scan"),
        ("offcentre_wide",),
        ("canvas_rgba",),
        ("photo_jpeg",),
        ("thick_strokes", "thin_strokes"),
        ("palette_png", "png16_gray", "gif_first_frame", "webp_lossy"),
    ],
)
def test_user_style_images_stay_within_3_points_of_raw(
    book_client: TestClient, mnist_test, variants: tuple[str, ...]
) -> None:
    images, labels = mnist_test
    n = 200
    raw = book_client.post(
        "/predict",
        content=images[:n].tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    raw_accuracy = float(np.mean(np.array(labels_of(raw)) == labels[:n]))
    for name in variants:
        bodies = render(name, images[:n], seed=0)
        got: list[int] = []
        for start in range(0, n, 50):
            files = [
                ("file", (f"{i}", body, "application/octet-stream"))
                for i, body in enumerate(bodies[start : start + 50])
            ]
            got += labels_of(book_client.post("/predict?preprocess=auto", files=files))
        accuracy = float(np.mean(np.array(got) == labels[:n]))
        assert accuracy >= raw_accuracy - 0.03, (name, accuracy, raw_accuracy)


def test_return_input_shows_what_the_network_saw(client: TestClient) -> None:
    canvas = np.full((280, 200), 255, np.uint8)
    canvas[40:240, 90:110] = 0  # a dark vertical bar on white paper
    r = client.post(
        "/predict?return_input=true",
        content=png(canvas),
        headers={"content-type": "image/png"},
    )
    assert r.status_code == 200
    seen = np.array(r.json()["input"])
    assert seen.shape == (28, 28)
    assert seen.max() == pytest.approx(1.0, abs=0.05)  # ink became white on black
    assert seen[0].max() == 0
    assert seen[:, 0].max() == 0
    ys, _xs = np.nonzero(seen > 0.05)
    assert ys.max() - ys.min() + 1 <= 22  # 20 rows, plus anti-aliasing at each end


def test_preprocess_modes(client: TestClient) -> None:
    big = np.zeros((100, 100), np.uint8)
    big[20:80, 45:55] = 255
    assert_problem(
        client.post(
            "/predict?preprocess=raw",
            content=png(big),
            headers={"content-type": "image/png"},
        ),
        422,
        "28x28",
    )
    assert (
        client.post(
            "/predict?preprocess=mnist",
            content=png(big),
            headers={"content-type": "image/png"},
        ).status_code
        == 200
    )
    assert_problem(
        client.post(
            "/predict?preprocess=fancy",
            content=png(big),
            headers={"content-type": "image/png"},
        ),
        422,
    )
    small = np.zeros((28, 28), np.uint8)
    small[4:24, 13:15] = 255
    raw = client.post(
        "/predict?preprocess=raw&return_input=true",
        content=png(small),
        headers={"content-type": "image/png"},
    )
    np.testing.assert_allclose(np.array(raw.json()["input"]), small / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "image/png", 400),
        (b"\x89PNG\r\n\x1a\n" + b"junk" * 10, "image/png", 400),
        (b"II*\x00" + bytes(100), "image/tiff", 415),
        (b"not an image at all", "image/jpeg", 400),
    ],
)
def test_bad_image_bodies(
    client: TestClient, body: bytes, content_type: str, status: int
) -> None:
    assert_problem(
        client.post("/predict", content=body, headers={"content-type": content_type}),
        status,
    )
    assert client.get("/health/ready").status_code == 200


def test_uniform_image_has_no_ink(client: TestClient) -> None:
    blank = np.full((50, 50), 200, np.uint8)
    assert_problem(
        client.post(
            "/predict", content=png(blank), headers={"content-type": "image/png"}
        ),
        422,
        "no digit",
    )


def test_multipart_errors(client: TestClient, settings) -> None:
    ok = png(np.eye(28, dtype=np.uint8) * 255)
    assert_problem(
        client.post("/predict", files=[("image", ("a.png", ok, "image/png"))]),
        422,
        "named file",
    )
    too_many = [
        ("file", (f"{i}.png", ok, "image/png"))
        for i in range(settings.max_upload_parts + 1)
    ]
    assert_problem(client.post("/predict", files=too_many), 413)
    assert_problem(
        client.post(
            "/predict",
            content=b"--x\r\nbroken",
            headers={"content-type": "multipart/form-data"},
        ),
        400,
        "boundary",
    )
    assert_problem(
        client.post(
            "/predict",
            content=b"garbage",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        400,
        "multipart",
    )
    assert_problem(
        client.post(
            "/predict",
            data={"file": "text, not a file"},
            files=[("other", ("a", b"", "text/plain"))],
        ),
        422,
    )


def test_pixel_bomb_is_refused_fast(client: TestClient) -> None:
    import struct
    import zlib

    # A valid PNG header claiming 100,000 x 100,000 pixels, with a tiny body.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    )
    bomb += chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    assert_problem(
        client.post("/predict", content=bomb, headers={"content-type": "image/png"}),
        413,
        "pixels",
    )


def test_a_multipart_batch_names_every_unusable_part(client: TestClient) -> None:
    good = png(np.eye(28, dtype=np.uint8)[::-1] * 255)
    blank = png(np.full((40, 40), 255, np.uint8))
    files = [
        ("file", ("one.png", good, "image/png")),
        ("file", ("junk.png", b"not an image", "image/png")),
        ("file", ("blank.png", blank, "image/png")),
        ("file", ("two.png", good, "image/png")),
    ]
    body = assert_problem(client.post("/predict", files=files), 422, "2 of 4")
    assert [e["loc"] for e in body["errors"]] == [["file", 1], ["file", 2]]
    assert [e["filename"] for e in body["errors"]] == ["junk.png", "blank.png"]
    assert "cannot decode" in body["errors"][0]["msg"]
    assert "no digit" in body["errors"][1]["msg"]
    # The client drops them and sends the rest again: it goes through.
    rest = [files[0], files[3]]
    assert len(labels_of(client.post("/predict", files=rest))) == 2


def test_a_batch_of_blank_parts_names_them_all(client: TestClient) -> None:
    blank = png(np.full((40, 40), 255, np.uint8))
    files = [("file", (f"{i}.png", blank, "image/png")) for i in range(3)]
    body = assert_problem(client.post("/predict", files=files), 422, "3 of 3")
    assert [e["loc"] for e in body["errors"]] == [["file", i] for i in range(3)]
    assert all("no digit" in e["msg"] for e in body["errors"])
    # A single raw body keeps its own error, as before.
    assert_problem(
        client.post("/predict", content=b"junk", headers={"content-type": "image/png"}),
        400,
    )


@pytest.fixture(scope="module")
def shipped_client():
    from app.main import create_app
    from app.settings import Settings
    from tests.conftest import PROJECT_ROOT

    weights = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
    with TestClient(
        create_app(Settings(weights=weights)), raise_server_exceptions=False
    ) as c:
        yield c


@pytest.mark.parametrize(
    "variants",
    [
        ("tight_28_nearest", "tight_112"),
        ("frame28_white_on_black", "offcentre28"),
        ("lowres_bilinear", "gradient_tight", "vignette_page"),
    ],
)
def test_hard_renderings_over_http_within_2_points_and_never_refused(
    shipped_client: TestClient, mnist_test, variants: tuple[str, ...]
) -> None:
    images, labels = mnist_test
    n = 120
    raw = shipped_client.post(
        "/predict",
        content=images[:n].tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    raw_accuracy = float(np.mean(np.array(labels_of(raw)) == labels[:n]))
    for name in variants:
        bodies = render(name, images[:n], seed=0)
        files = [
            ("file", (f"{i}", body, "application/octet-stream"))
            for i, body in enumerate(bodies)
        ]
        got: list[int] = []
        for start in range(0, n, 60):
            response = shipped_client.post("/predict", files=files[start : start + 60])
            got += labels_of(response)  # any refusal fails the whole batch
        accuracy = float(np.mean(np.array(got) == labels[:n]))
        assert accuracy >= raw_accuracy - 0.02, (name, accuracy, raw_accuracy)
