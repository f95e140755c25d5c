"""``inference.GRPCInferenceService``: a thin adapter over the one inference path.

Runs in uvicorn's event loop (``grpc.aio``), started and stopped by the app's
lifespan, so ``mnist-serve``, ``uvicorn app.main:app``, the container and
Kubernetes all get it. Each RPC goes through :func:`_rpc`: a request id from
the ``x-request-id`` metadata (or a new one, sent back), the same error edge
as HTTP (an exception's status becomes a gRPC status code with the same
words), and the same metrics (labelled ``protocol="grpc"``). Tensors follow
:mod:`app.codecs.tensors`, as ``/v2`` does, so answers equal ``/predict``'s
bit for bit.

With several workers every worker serves the port: each binds it with
``SO_REUSEPORT`` (gRPC's default on Linux), and the kernel spreads new
connections over them. With one worker the option is off, so that a port
already in use is an error at startup rather than a silent neighbour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.json_format import ParseDict
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app import admission, errors, protocol
from app.admission import Budget, Ticket
from app.auth import check_admin
from app.codecs import run_sized
from app.codecs.tensors import Tensor, raw_bytes, results, select_outputs, to_batch
from app.codecs.v2 import ANSWER_BYTES_PER_ROW
from app.exceptions import InvalidRequestError
from app.grpc_api.protos import inference_pb2 as pb
from app.grpc_api.protos import inference_pb2_grpc as pb_grpc
from app.logconfig import set_request_id
from app.middleware import request_id_or_new
from app.service import Service
from app.settings import Settings
from core.batch import Batch

logger = logging.getLogger("mnist_serve")

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
Reply = TypeVar("Reply")

_CONTENTS = {"FP32": "fp32_contents", "UINT8": "uint_contents"}


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's RPCs over a :class:`Service` (its models, limits, stats)."""

    def __init__(self, service: Service, budget: Budget, version: str) -> None:
        self.service = service
        self.budget = budget
        self.version = version

    async def ServerLive(self, request: Any, context: Any) -> Any:
        async def live(context: Any) -> Any:
            return pb.ServerLiveResponse(live=True)

        return await _rpc(self, "ServerLive", context, live)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        async def ready(context: Any) -> Any:
            return pb.ServerReadyResponse(ready=self.service.models.ready)

        return await _rpc(self, "ServerReady", context, ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        async def ready(context: Any) -> Any:
            models = self.service.models
            if not models.ready:
                return pb.ModelReadyResponse(ready=False)
            models.get(request.name, request.version)  # NOT_FOUND if unknown
            return pb.ModelReadyResponse(ready=True)

        return await _rpc(self, "ModelReady", context, ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        async def metadata(context: Any) -> Any:
            return ParseDict(
                protocol.server_metadata(self.version), pb.ServerMetadataResponse()
            )

        return await _rpc(self, "ServerMetadata", context, metadata)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def metadata(context: Any) -> Any:
            model = self.service.models.get(request.name, request.version)
            versions = (
                [model.version]
                if request.version
                else list(self.service.models.serving[model.name])
            )
            return ParseDict(
                protocol.model_metadata(model, versions), pb.ModelMetadataResponse()
            )

        return await _rpc(self, "ModelMetadata", context, metadata)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        async def config(context: Any) -> Any:
            model = self.service.models.get(request.name, request.version)
            body = protocol.model_config(model, self.service.limits.max_rows)
            return pb.ModelConfigResponse(config=ParseDict(body, pb.ModelConfig()))

        return await _rpc(self, "ModelConfig", context, config)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        async def statistics(context: Any) -> Any:
            models = self.service.models
            if request.name:
                model = models.get(request.name, request.version)
                served = (
                    [model]
                    if request.version
                    else list(models.serving[model.name].values())
                )
            else:
                served = list(models)
            body = protocol.model_statistics(models, served)
            return ParseDict(body, pb.ModelStatisticsResponse())

        return await _rpc(self, "ModelStatistics", context, statistics)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        async def index(context: Any) -> Any:
            self._admin(context)
            rows = protocol.repository_index(
                self.service.repository.index(), request.ready
            )
            return ParseDict({"models": rows}, pb.RepositoryIndexResponse())

        return await _rpc(self, "RepositoryIndex", context, index)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        async def load(context: Any) -> Any:
            self._admin(context)
            self.service.repository.require_explicit("load")
            protocol.check_load_parameters(dict(request.parameters))
            await self.service.repository.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await _rpc(self, "RepositoryModelLoad", context, load)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        async def unload(context: Any) -> Any:
            self._admin(context)
            self.service.repository.require_explicit("unload")
            await self.service.repository.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await _rpc(self, "RepositoryModelUnload", context, unload)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def infer(context: Any) -> Any:
            name, version = request.model_name, request.model_version
            self.service.models.get(name, version)  # NOT_FOUND before any work
            if len(request.inputs) != 1:
                raise InvalidRequestError(
                    f"inputs must hold exactly one tensor named 'input', got "
                    f"{len(request.inputs)}"
                )
            # Charged like an HTTP body's decoding and answer (the message
            # itself was read before any handler: see grpc_calls).
            await ticket.charge(
                _decoding_cost(request), "decoding the inference request"
            )
            outputs = select_outputs(
                [(o.name, _top(o.parameters), None) for o in request.outputs]
                if request.outputs
                else None
            )
            batch = await run_sized(
                request.ByteSize(), _batch, request, self.service.limits.max_rows
            )
            await ticket.charge(
                batch.rows * ANSWER_BYTES_PER_ROW, "answering the inference request"
            )
            prediction = await self.service.inference.predict(batch, name, version)
            response = pb.ModelInferResponse(
                model_name=prediction.model.name,
                model_version=str(prediction.model.version),
                id=request.id,
            )
            for output, datatype, array in results(prediction, outputs):
                response.outputs.add(
                    name=output.name, datatype=datatype, shape=list(array.shape)
                )
                response.raw_output_contents.append(raw_bytes(datatype, array))
            return response

        ticket = Ticket(self.budget)
        try:
            return await _rpc(self, "ModelInfer", context, infer)
        finally:
            ticket.release()

    def _admin(self, context: Any) -> None:
        metadata = dict(context.invocation_metadata() or ())
        check_admin(self.service.settings.admin_token, metadata.get("authorization"))


def _batch(request: Any, max_rows: int) -> Batch:
    return to_batch(_tensor(request), max_rows)


def _tensor(request: Any) -> Tensor:
    """The input as sent: typed contents, or the raw bytes of the extension."""
    sent = request.inputs[0]
    shape = list(sent.shape)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidRequestError(
                "raw_input_contents must hold one entry per input (one)"
            )
        if sent.HasField("contents"):
            raise InvalidRequestError("the input has both contents and raw contents")
        return Tensor(
            sent.name, sent.datatype, shape, raw=request.raw_input_contents[0]
        )
    field = _CONTENTS.get(sent.datatype)
    values = getattr(sent.contents, field) if field else ()
    if field is None or not values:
        raise InvalidRequestError(
            "the input has no values: send raw_input_contents, or "
            f"contents.{field or 'fp32_contents'} for {sent.datatype or 'FP32'}"
        )
    dtype = np.float32 if sent.datatype == "FP32" else np.uint32
    return Tensor(sent.name, sent.datatype, shape, np.asarray(values, dtype=dtype))


def _decoding_cost(request: Any) -> int:
    """Bytes the decoding of the input may hold at once (see app.admission)."""
    size = int(request.ByteSize())
    per_byte = admission.BINARY_BYTES_PER_BODY_BYTE
    if request.inputs and request.inputs[0].datatype == "UINT8":
        per_byte = admission.OCTET_BYTES_PER_BODY_BYTE
    return size * per_byte


def _top(parameters: Any) -> int | None:
    parameter = parameters.get("classification")
    if parameter is None:
        return None
    if parameter.WhichOneof("parameter_choice") != "int64_param":
        raise InvalidRequestError("classification must be an int64 parameter")
    return int(parameter.int64_param)


async def _rpc(
    servicer: InferenceService,
    method: str,
    context: Any,
    handler: Callable[[Any], Awaitable[Reply]],
) -> Reply:
    """Run one RPC: request id, the error edge, metrics."""
    metadata = dict(context.invocation_metadata() or ())
    given = metadata.get("x-request-id")
    rid = request_id_or_new(given if isinstance(given, str) else None)
    set_request_id(rid)
    await context.send_initial_metadata((("x-request-id", rid),))
    start = time.perf_counter()
    code = "OK"
    try:
        return await handler(context)
    except Exception as exc:
        failure = errors.describe(exc, method="POST", path=method, request_id=rid)
        if failure.status == 500:
            logger.exception("unhandled error in gRPC %s (request id %s)", method, rid)
        code, details = errors.grpc_status(failure)
        await context.abort(grpc.StatusCode[code], details)
        raise  # abort raises; this is never reached
    finally:
        metrics = servicer.service.metrics
        if metrics is not None:
            metrics.observe_grpc(method, code, time.perf_counter() - start)


class _Health:
    """``grpc.health.v1.Health`` for ``""`` (the server) and each model, kept in
    step with what is served."""

    def __init__(self, service: Service) -> None:
        self.servicer = health.aio.HealthServicer()
        self.service = service
        self.known: set[str] = set()

    async def update(self) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        models = self.service.models
        await self.servicer.set("", serving if models.ready else not_serving)
        await self.servicer.set(SERVICE, serving if models.ready else not_serving)
        names = set(models.serving)
        for name in names | self.known:
            await self.servicer.set(name, serving if name in names else not_serving)
        self.known |= names


def grpc_calls(settings: Settings) -> int:
    """gRPC calls at once: their messages, read whole before any handler (and
    so before any charge), may hold an eighth of the memory budget, on top of it
    (4 calls of 8 MiB at the defaults; see the README's memory bound)."""
    return max(
        1,
        min(
            settings.max_concurrency,
            settings.memory_budget // (8 * settings.max_body_bytes),
        ),
    )


async def start(
    service: Service, budget: Budget, *, host: str, port: int, version: str
) -> Any:
    """Start the gRPC server on ``host:port`` in the running event loop.

    grpc reads each message whole before a handler runs, so the calls at once
    are capped by what the memory budget holds of the largest message; each
    call's decoding is then charged to ``budget`` like an HTTP body's.

    Raises
    ------
    RuntimeError
        The port cannot be bound.
    """
    settings = service.settings
    server = grpc.aio.server(
        options=[
            # The same body limit as HTTP, protobuf framing included.
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
        maximum_concurrent_rpcs=grpc_calls(settings),
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceService(service, budget, version), server
    )
    health_service = _Health(service)
    health_pb2_grpc.add_HealthServicer_to_server(health_service.servicer, server)
    reflection.enable_server_reflection(
        [SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"gRPC cannot listen on {address} (in use?)")
    await server.start()
    await health_service.update()

    def changed() -> None:
        asyncio.get_running_loop().create_task(health_service.update())

    service.models.on_change(changed)
    logger.info("gRPC (Open Inference Protocol) on %s", address)
    return server
