"""GET /metrics: Prometheus' text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.metrics import Metrics

router = APIRouter()


# A plain def: in multiprocess mode the scrape reads files, off the event loop.
@router.get("/metrics", include_in_schema=False)
def scrape(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
