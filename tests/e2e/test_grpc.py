"""The Open Inference Protocol over gRPC, with the real tritonclient.grpc.

A real mnist-serve process serves HTTP and gRPC on free ports; the clients are
tritonclient's (sync and asyncio), grpc's own health and reflection clients,
and plain HTTP for the bit-for-bit comparison with /predict.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from bench.procs import free_port, launch, wait_ready
from tests.conftest import BOOK_WEIGHTS, PROJECT_ROOT, require
from tests.e2e.conftest import Server, mnist_serve_command

grpcclient = pytest.importorskip("tritonclient.grpc")
grpc_aio = pytest.importorskip("tritonclient.grpc.aio")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e

TOKEN = "grpc-test-token"


class GrpcServer(Server):
    grpc_url: str


def _start(tmp: Path, *args: str, env: dict[str, str] | None = None) -> GrpcServer:
    port, grpc_port = free_port(), free_port()
    log = tmp / f"server-{port}.log"
    command = [
        *mnist_serve_command(),
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        *args,
    ]
    process = launch(command, log, {"MNIST_SERVE_ADMIN_TOKEN": TOKEN, **(env or {})})
    server = GrpcServer(process, f"http://127.0.0.1:{port}", log)
    server.grpc_url = f"127.0.0.1:{grpc_port}"
    wait_ready(process, server.url, log, timeout=60)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    tmp = tmp_path_factory.mktemp("grpc")
    s = _start(
        tmp,
        "--model",
        f"book={require(BOOK_WEIGHTS)}",
        env={"MNIST_SERVE_MAX_BODY_BYTES": str(256 * 1024)},
    )
    try:
        yield s
    finally:
        assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server: GrpcServer) -> Iterator[object]:
    c = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        yield c
    finally:
        c.close()


def _input(x: np.ndarray, raw: bool = True) -> object:
    datatype = {np.uint8: "UINT8", np.int32: "INT32"}.get(x.dtype.type, "FP32")
    tensor = grpcclient.InferInput("input", list(x.shape), datatype)
    if raw:
        tensor.set_data_from_numpy(x)
    else:  # typed contents instead of raw_input_contents
        field = "fp32_contents" if datatype == "FP32" else "uint_contents"
        getattr(tensor._get_tensor().contents, field).extend(x.ravel().tolist())
    return tensor


def _predict(server: Server, x: np.ndarray, model: str = "mnist") -> dict:
    r = httpx.post(
        f"{server.url}/predict?model={model}",
        content=x.tobytes() if x.dtype == np.uint8 else json.dumps({"x": x.tolist()}),
        headers={
            "content-type": "application/octet-stream"
            if x.dtype == np.uint8
            else "application/json"
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_health_metadata_and_config(client: object, server: GrpcServer) -> None:
    assert client.is_server_live()  # type: ignore[attr-defined]
    assert client.is_server_ready()  # type: ignore[attr-defined]
    assert client.is_model_ready("mnist")  # type: ignore[attr-defined]
    assert client.is_model_ready("book", "1")  # type: ignore[attr-defined]
    meta = client.get_server_metadata(as_json=True)  # type: ignore[attr-defined]
    assert meta["name"] == "mnist-serve"
    assert "model_repository" in meta["extensions"]
    model = client.get_model_metadata("mnist", as_json=True)  # type: ignore[attr-defined]
    assert model["inputs"][0] == {
        "name": "input",
        "datatype": "FP32",
        "shape": ["-1", "784"],
    }
    config = client.get_model_config("mnist", as_json=True)["config"]  # type: ignore[attr-defined]
    assert config["input"][0]["dims"] == ["784"]
    assert config["input"][0]["data_type"] == "TYPE_FP32"


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("dtype", ["FP32", "UINT8"])
def test_answers_equal_predict_bit_for_bit(
    client: object, server: GrpcServer, raw: bool, dtype: str
) -> None:
    rng = np.random.default_rng(4)
    x = (
        rng.random((6, 784), dtype=np.float32)
        if dtype == "FP32"
        else rng.integers(0, 256, (6, 784), dtype=np.uint8)
    )
    result = client.infer("mnist", [_input(x, raw)])  # type: ignore[attr-defined]
    expected = _predict(server, x)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    assert (
        probabilities.tobytes()
        == np.array(expected["probabilities"], dtype=np.float32).tobytes()
    )
    assert result.as_numpy("label").tolist() == expected["labels"]
    assert result.get_response().model_version == "1"


def test_the_books_weights_give_9352(
    client: object, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test
    pixels = images.reshape(len(images), 784)
    correct = 0
    for start in range(0, len(pixels), 250):  # 250 x 784 bytes: under the 256 KiB limit
        chunk = pixels[start : start + 250]
        out = client.infer("book", [_input(chunk)])  # type: ignore[attr-defined]
        correct += int((out.as_numpy("label") == labels[start : start + 250]).sum())
    assert correct == 9352


@pytest.mark.parametrize(
    ("make", "code", "says"),
    [
        (
            lambda: ("nope", [_input(np.zeros((1, 784), np.float32))]),
            "NOT_FOUND",
            "unknown model",
        ),
        (
            lambda: ("mnist", [_input(np.full((1, 784), 2.0, np.float32))]),
            "INVALID_ARGUMENT",
            "outside [0, 1]",
        ),
        (
            lambda: ("mnist", [_input(np.full((1, 784), np.nan, np.float32))]),
            "INVALID_ARGUMENT",
            "non-finite",
        ),
        (
            lambda: ("mnist", [_input(np.zeros((1, 783), np.float32))]),
            "INVALID_ARGUMENT",
            "shape",
        ),
        (
            lambda: ("mnist", [_input(np.zeros((1, 784), np.int32))]),
            "INVALID_ARGUMENT",
            "datatype",
        ),
        (
            lambda: ("mnist", [_input(np.zeros((5000, 784), np.uint8))]),
            "RESOURCE_EXHAUSTED",
            "",
        ),
    ],
    ids=["unknown-model", "out-of-range", "nan", "shape", "datatype", "over-limit"],
)
def test_errors_are_status_codes_with_clear_messages(
    client: object, make: object, code: str, says: str
) -> None:
    name, inputs = make()  # type: ignore[operator]
    with pytest.raises(InferenceServerException) as caught:
        client.infer(name, inputs)  # type: ignore[attr-defined]
    assert caught.value.status() == f"StatusCode.{code}"
    assert says in caught.value.message()
    assert client.is_server_live()  # type: ignore[attr-defined]


def test_classification_and_selected_outputs(
    client: object, server: GrpcServer
) -> None:
    x = np.random.default_rng(8).random((2, 784), dtype=np.float32)
    outputs = [grpcclient.InferRequestedOutput("probabilities", class_count=3)]
    result = client.infer("mnist", [_input(x)], outputs=outputs)  # type: ignore[attr-defined]
    top = result.as_numpy("probabilities")
    expected = np.array(_predict(server, x)["probabilities"])
    for row, want in zip(top, expected, strict=True):
        indices = [int(item.decode().split(":")[1]) for item in row]
        assert indices == list(np.argsort(-want, kind="stable")[:3])
    assert result.as_numpy("label") is None


def test_repository_extension_needs_the_token(client: object) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_repository_index()  # type: ignore[attr-defined]
    assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
    index = client.get_model_repository_index(  # type: ignore[attr-defined]
        headers={"authorization": f"Bearer {TOKEN}"}, as_json=True
    )
    assert {m["name"] for m in index["models"]} >= {"mnist", "book"}
    with pytest.raises(InferenceServerException) as caught:
        client.unload_model("book", headers={"authorization": f"Bearer {TOKEN}"})  # type: ignore[attr-defined]
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED"  # not explicit mode
    stats = client.get_inference_statistics("book", as_json=True)  # type: ignore[attr-defined]
    assert int(stats["model_stats"][0]["inference_count"]) >= 1


def test_asyncio_client(server: GrpcServer) -> None:
    async def run() -> list[int]:
        c = grpc_aio.InferenceServerClient(server.grpc_url)
        try:
            assert await c.is_model_ready("mnist")
            x = np.zeros((3, 784), np.uint8)
            tensor = grpc_aio.InferInput("input", [3, 784], "UINT8")
            tensor.set_data_from_numpy(x)
            result = await c.infer("mnist", [tensor])
            return result.as_numpy("label").tolist()
        finally:
            await c.close()

    assert (
        asyncio.run(run()) == _predict(server, np.zeros((3, 784), np.uint8))["labels"]
    )


def test_health_service_and_reflection(server: GrpcServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.grpc_url) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "mnist", "book", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
    assert "inference.GRPCInferenceService" in names
    assert "grpc.health.v1.Health" in names


def test_request_ids_come_from_metadata(client: object, server: GrpcServer) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerLive",
            request_serializer=lambda _: b"",
            response_deserializer=lambda b: b,
        )
        _, info = call.with_call(b"", metadata=(("x-request-id", "grpc-req-7"),))
        assert ("x-request-id", "grpc-req-7") in info.initial_metadata()
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mnist_serve_grpc_requests_total{code="OK",method="ServerLive"}' in metrics


def test_messages_match_tritonclient_field_by_field() -> None:
    """Our .proto and tritonclient's stubs: same names, numbers and types."""
    dump = subprocess.run(
        [
            sys.executable,
            "-c",
            _DUMP.format(module="app.grpc_api.protos.inference_pb2"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    ours = json.loads(dump.stdout)
    theirs = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                _DUMP.format(module="tritonclient.grpc.service_pb2"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert ours["service"]["name"] == theirs["service"]["name"]
    for method, types in ours["service"]["methods"].items():
        assert theirs["service"]["methods"][method] == types, method
    for message, fields in ours["messages"].items():
        assert message in theirs["messages"], message
        for name, spec in fields.items():
            assert theirs["messages"][message].get(name) == spec, (message, name)


_DUMP = """
import json, importlib
module = importlib.import_module("{module}")
pool = module.DESCRIPTOR.pool
service = pool.FindServiceByName("inference.GRPCInferenceService")
messages = {{}}
def walk(d):
    messages[d.full_name] = {{
        f.name: [f.number, f.type, f.message_type.full_name if f.message_type else None,
                 f.is_repeated]
        for f in d.fields
    }}
    for n in d.nested_types:
        walk(n)
files = [pool.FindFileByName(n) for n in [module.DESCRIPTOR.name]
         + [d.name for d in module.DESCRIPTOR.dependencies]]
for fd in files:
    for d in fd.message_types_by_name.values():
        walk(d)
print(json.dumps({{
    "service": {{"name": service.full_name, "methods": {{
        m.name: [m.input_type.full_name, m.output_type.full_name] for m in service.methods
    }}}},
    "messages": messages,
}}))
"""


def test_every_worker_serves_grpc(tmp_path: Path) -> None:
    """With two workers both answer on the one port (SO_REUSEPORT)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    s = _start(
        tmp_path, "--workers", "2", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )
    try:
        per_worker: dict[str, float] = {}
        for _ in range(20):
            for _ in range(20):  # new channels: new connections, spread by the kernel
                with grpc.insecure_channel(s.grpc_url) as channel:
                    grpc.channel_ready_future(channel).result(timeout=10)
                    channel.unary_unary(
                        "/inference.GRPCInferenceService/ServerLive",
                        request_serializer=lambda _: b"",
                        response_deserializer=lambda b: b,
                    )(b"")
            per_worker = {}
            for db in metrics_dir.glob("counter_*.db"):
                for metric in MultiProcessCollector.merge([str(db)]):
                    for sample in metric.samples:
                        if sample.name == "mnist_serve_grpc_requests_total":
                            per_worker[db.name] = (
                                per_worker.get(db.name, 0) + sample.value
                            )
            if len(per_worker) == 2:
                break
        assert len(per_worker) == 2, per_worker
    finally:
        assert s.stop() == 0


def test_sigterm_drains_calls_in_flight(tmp_path: Path) -> None:
    """A gRPC call started before SIGTERM still gets its answer, and the exit is 0.

    The call is started with its request held back (a stream of one message
    to the unary method): the server has the call before the signal arrives,
    and its message only after, so the call is in flight across the signal.
    """
    # tritonclient's messages: ours would clash with them in this process's
    # descriptor pool (same protocol, same names), and the wire is the same.
    from tritonclient.grpc import service_pb2 as pb

    s = _start(tmp_path)
    release = threading.Event()
    x = np.random.default_rng(3).integers(0, 256, (64, 784), dtype=np.uint8)
    request = pb.ModelInferRequest(model_name="mnist", raw_input_contents=[x.tobytes()])
    request.inputs.add(name="input", datatype="UINT8", shape=[64, 784])

    def held() -> Iterator[object]:
        release.wait(30)
        yield request

    try:
        with grpc.insecure_channel(s.grpc_url) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            infer = channel.stream_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            future = infer.future(held())
            s.process.send_signal(15)
            release.set()
            answer = future.result(timeout=60)
        assert answer.model_name == "mnist"
        assert [o.name for o in answer.outputs] == ["probabilities", "label"]
        assert len(answer.raw_output_contents[1]) == 64 * 8
        assert s.process.wait(30) == 0
    finally:
        s.stop()


def test_inference_is_charged_to_the_memory_budget(tmp_path: Path) -> None:
    # 2,000 FP32 rows (6.3 MB) need ~25 MB to decode: more than a 16 MiB
    # budget leaves; one row fits, and the worker keeps serving.
    s = _start(tmp_path, env={"MNIST_SERVE_MEMORY_BUDGET": str(16 * 1024 * 1024)})
    c = grpcclient.InferenceServerClient(s.grpc_url)
    try:
        big = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
        with pytest.raises(InferenceServerException) as caught:
            c.infer("mnist", [_input(big)])
        assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "decoding the inference request needs about" in caught.value.message()
        assert "memory budget" in caught.value.message()
        one = c.infer("mnist", [_input(big[:1])]).as_numpy("probabilities")
        assert one.shape == (1, 10)
    finally:
        c.close()
        assert s.stop() == 0
