"""Log format option and request ids in log records."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from app.logconfig import JsonFormatter, RequestIdFilter, log_config


def record(name: str, msg: str, args: tuple = (), exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)


def test_json_formatter_fields():
    r = record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/predict", "1.1", 200),
    )
    RequestIdFilter().filter(r)  # outside a request: "-", left out of the JSON
    out = orjson.loads(JsonFormatter().format(r))
    assert out["level"] == "info"
    assert out["logger"] == "uvicorn.access"
    assert out["method"] == "POST"
    assert out["path"] == "/predict"
    assert out["status"] == 200
    assert "request_id" not in out
    assert out["time"].endswith("+00:00")


def test_json_formatter_exception_and_given_id():
    try:
        raise ValueError("boom")
    except ValueError:
        r = record("mnist_serve", "failed %s", ("x",), sys.exc_info())
    r.request_id = "abc"
    RequestIdFilter().filter(r)  # keeps an id already on the record
    out = orjson.loads(JsonFormatter().format(r))
    assert out["message"] == "failed x"
    assert out["request_id"] == "abc"
    assert "ValueError: boom" in out["exception"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_config_is_valid(fmt):
    config = log_config("debug", fmt)
    assert config["loggers"]["mnist_serve"]["level"] == "DEBUG"
    # The formatter factories that dictConfig will import must exist (applying
    # the config here would reconfigure the test run's own logging).
    for formatter in config["formatters"].values():
        module, _, name = formatter["()"].rpartition(".")
        assert getattr(__import__(module, fromlist=[name]), name)


def _log_lines(fmt: str, weights_file: Path, tmp_path: Path) -> tuple[list[str], str]:
    from tests.e2e.conftest import start_server

    server = start_server(weights_file, tmp_path, "--log-format", fmt, "--access-log")
    try:
        r = httpx.post(
            f"{server.url}/predict",
            json={"x": [2.0] * 784},
            headers={"x-request-id": "given-id-1"},
        )
        assert r.status_code == 422
        assert r.headers["x-request-id"] == "given-id-1"
        assert r.json()["request_id"] == "given-id-1"
        generated = httpx.get(f"{server.url}/health/live").headers["x-request-id"]
    finally:
        assert server.stop() == 0
    return server.log.read_text().splitlines(), generated


@pytest.mark.e2e
def test_json_logs_carry_request_ids(weights_file: Path, tmp_path: Path):
    lines, generated = _log_lines("json", weights_file, tmp_path)
    records = [orjson.loads(line) for line in lines if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(
        r["request_id"] == "given-id-1"
        and r["status"] == 422
        and r["path"] == "/predict"
        for r in access
    ), access
    assert any(r.get("request_id") == generated for r in access), access
    assert any(r["logger"] == "mnist_serve" for r in records)


@pytest.mark.e2e
def test_text_access_log_has_the_request_id(weights_file: Path, tmp_path: Path):
    lines, generated = _log_lines("text", weights_file, tmp_path)
    assert any(
        "/predict" in ln and "422" in ln and "[given-id-1]" in ln for ln in lines
    )
    assert any(f"[{generated}]" in ln for ln in lines)
