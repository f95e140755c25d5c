"""Smoke tests of the benchmark suite on tiny settings.

They check that every benchmark runs and reports what it claims (rows, ratios,
peers computing the same function, servers answering 200 under load), never
how fast anything is: speed is judged by ``python -m bench``, side by side.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench import compare, core, floor_app, http, loadgen, onnx_model
from bench.__main__ import main
from bench.common import table
from bench.procs import rss_mib
from core.network import Network


def test_core_run_compares_every_implementation(weights_file: Path) -> None:
    result = core.run(
        weights=weights_file,
        threads=(1,),
        images=300,
        rounds=1,
        target=0.001,
        batches=(1, 100, 300),
    )
    impls = {"mnist-serve core", "core forward_reference", "book loop (ch03)"}
    if onnx_model.available():
        impls.add("onnxruntime")
    assert {r["impl"] for r in result["rows"]} == impls
    assert {r["batch"] for r in result["rows"]} == {1, 100, 300}
    assert all(r["images_per_s"] > 0 and r["call_us"] > 0 for r in result["rows"])
    # Batch 100 over 300 images is three calls: per-call time is a third.
    row = next(r for r in result["rows"] if r["batch"] == 100)
    assert row["call_us"] == pytest.approx(300 / row["images_per_s"] / 3 * 1e6)
    # Without the peer the report says what was not measured, not nothing.
    expected = "single-image" if onnx_model.available() else "not measured"
    assert expected in core.render(result)


def test_core_ratios_follow_the_issue_targets() -> None:
    rows = [
        {"impl": "mnist-serve core", "batch": 10_000, "threads": 1,
         "images_per_s": 1.5e6, "call_us": 1.0},
        {"impl": "mnist-serve core", "batch": 1, "threads": 1,
         "images_per_s": 1.0, "call_us": 13.0},
        {"impl": "book loop (ch03)", "batch": 100, "threads": 1,
         "images_per_s": 1.0e6, "call_us": 1.0},
        {"impl": "onnxruntime", "batch": 10_000, "threads": 1,
         "images_per_s": 1.2e6, "call_us": 1.0},
        {"impl": "onnxruntime", "batch": 1, "threads": 1,
         "images_per_s": 1.0, "call_us": 10.0},
        {"impl": "core forward_reference", "batch": 1, "threads": 1,
         "images_per_s": 0.5, "call_us": 26.0},
    ]  # fmt: skip
    got = {r["target"]: (round(r["ratio"], 3), r["met"]) for r in core.ratios(rows)}
    assert got == {
        "batch 10,000 vs onnxruntime (1 thr)": (1.25, True),
        "batch 10,000 vs book batch-100 loop (1 thr)": (1.5, True),
        "single-image latency / onnxruntime's (1 thr)": (1.3, False),
        "fast path vs forward_reference, batch 1 (1 thr)": (2.0, True),
    }


def test_book_reference_matches_the_network(tiny_network: Network) -> None:
    x = np.random.default_rng(1).random((7, 784), dtype=np.float32)
    params = {k: np.array(v) for k, v in tiny_network.params().items()}
    np.testing.assert_allclose(
        core.book_predict(params, x), tiny_network.forward(x), atol=1e-6
    )


def test_onnx_peer_computes_the_same_function(tiny_network: Network) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    peer = onnx_model.OnnxPeer(tiny_network, threads=1)
    x = np.random.default_rng(2).random((5, 784), dtype=np.float32)
    np.testing.assert_allclose(peer.forward(x), tiny_network.forward(x), atol=1e-6)
    np.testing.assert_allclose(
        peer.forward(x[0]), tiny_network.forward(x[0]), atol=1e-6
    )


def test_onnx_peer_refuses_what_it_does_not_mirror(tiny_network: Network) -> None:
    pytest.importorskip("onnx")
    relu = Network.from_params(tiny_network.params(), "relu")
    with pytest.raises(ValueError, match="sigmoid"):
        onnx_model.build_model(relu)


def test_floor_app_parses_each_body_and_answers_a_constant() -> None:
    floor_cases = [c for c in http.cases(batch=3, parts=2) if http.FLOOR in c.requests]
    assert len(floor_cases) == 5
    with TestClient(floor_app.create_app()) as client:
        for case in floor_cases:
            request = case.requests[http.FLOOR]
            r = client.post(request.path, content=request.body, headers=request.headers)
            assert r.status_code == 200, (case.name, r.text)
            assert http.answers(r.content, {}) == case.images
        # It really validates: a wrong body is Pydantic's 422, not a constant.
        bad = client.post("/json", json={"x": "seven"})
        assert bad.status_code == 422


def test_cases_hold_what_they_say() -> None:
    by_name = {c.name: c.requests[http.OURS] for c in http.cases(batch=4, parts=3)}
    assert len(json.loads(by_name["JSON single"].body)["x"]) == 784
    assert np.array(json.loads(by_name["JSON batch 4"].body)["x"]).shape == (4, 784)
    assert len(by_name["octet-stream batch 4"].body) == 4 * 784
    assert by_name["PNG single"].body.startswith(b"\x89PNG")
    assert by_name["multipart 3 PNG"].body.count(b'name="file"') == 3
    v2 = json.loads(by_name["V2 JSON batch 4 FP32"].body)["inputs"][0]
    assert (v2["shape"], len(v2["data"])) == ([4, 784], 4 * 784)
    binary = by_name["V2 binary batch 4 FP32"]
    size = int(binary.headers["Inference-Header-Content-Length"])
    assert len(binary.body) == size + 4 * 784 * 4
    for name in ("gRPC single UINT8", "gRPC batch 4 FP32"):
        assert by_name[name].grpc
        assert by_name[name].path == http.GRPC_INFER


def test_answers_reads_every_kind_of_answer() -> None:
    assert http.answers(b'{"label": 3, "probabilities": []}', {}) == 1
    assert http.answers(b'{"labels": [1, 2]}', {}) == 2
    header = b'{"outputs": [{"name": "label", "shape": [5]}]}'
    assert http.answers(header, {}) == 5
    binary = header + b"\x00" * 40
    assert (
        http.answers(binary, {"inference-header-content-length": str(len(header))}) == 5
    )


def test_table_renders_rows_and_missing_cells() -> None:
    text = table([{"a": 1234, "b": 0.5}, {"a": 2}], [("a", "A"), ("b", "B")])
    assert text.splitlines() == [
        "| A     | B    |",
        "| ----- | ---- |",
        "| 1,234 | 0.50 |",
        "|     2 |    - |",
    ]


def test_table_without_rows_has_only_its_header() -> None:
    # A targets table is empty when its peer (onnxruntime) is not installed.
    assert table([], [("a", "A"), ("bb", "B")]).splitlines() == [
        "| A | B |",
        "| - | - |",
    ]


@pytest.mark.e2e
def test_http_measure_against_a_real_server(weights_file: Path) -> None:
    case = http.octet_case(8)
    request = case.requests[http.OURS]
    with http.running(http.OURS, weights=weights_file) as server:
        row = http.measure(server, case, seconds=1, warmup=0, repeats=2)
        # The stand-in client too, so it works where wrk is not installed.
        fallback = loadgen.asyncio_http_load(
            server.url + request.path, request.body, request.headers, 0.5, 2
        )
        rss = rss_mib(server.process.pid)
    assert row["requests"] > 0
    assert len(row["rounds_req_per_s"]) == 2
    assert row["images_per_s"] == pytest.approx(row["req_per_s"] * 8)
    assert row["p99_ms"] >= row["p50_ms"] > 0
    assert fallback["requests"] > 0
    assert fallback["errors"] == 0
    assert rss is not None
    assert rss > 10
    assert server.startup_s > 0


@pytest.mark.e2e
def test_v2_and_grpc_rows_against_a_real_server(weights_file: Path) -> None:
    by_name = {c.name: c for c in http.cases(batch=3, parts=2)}
    names = ["V2 JSON batch 3 FP32", "V2 binary batch 3 FP32", "gRPC single UINT8",
             "gRPC batch 3 FP32"]  # fmt: skip
    with http.running(http.OURS, weights=weights_file) as server:
        rows = {
            name: http.measure(server, by_name[name], seconds=1, warmup=0)
            for name in names
        }
        call = by_name["gRPC batch 3 FP32"].requests[http.OURS]
        assert server.grpc is not None
        # The stand-in for h2load too, and the server's count of failed calls.
        fallback = loadgen.asyncio_grpc_load(server.grpc, call.path, call.body, 0.5, 2)
        assert http.failed_grpc_calls(server) == 0
        unknown = http.Case(
            "unknown model",
            3,
            {http.OURS: http.Request(call.path, call.body.replace(b"mnist", b"xmnst"),
                                     grpc=True)},
        )  # fmt: skip
        with pytest.raises(grpc.RpcError):
            http.check(server, unknown)
        with pytest.raises(RuntimeError, match="errors under load"):
            http._timed(server, unknown, 0.5, 2)
        assert http.failed_grpc_calls(server) > 0
    for name, row in rows.items():
        assert row["requests"] > 0, name
        assert row["p99_ms"] >= row["p50_ms"] > 0, name
    assert fallback["requests"] > 0
    assert fallback["errors"] == 0


@pytest.mark.e2e
def test_http_measure_refuses_a_server_that_answers_errors(weights_file: Path) -> None:
    # A 415 is not a result to time: the check before the load says so.
    bad = http.Request("/predict", b"7", {"Content-Type": "text/plain"})
    case = http.Case("bad", 1, {http.OURS: bad})
    with (
        http.running(http.OURS, weights=weights_file) as server,
        pytest.raises(urllib.error.HTTPError, match="415"),
    ):
        http.measure(server, case, seconds=1, warmup=0)


def test_compare_matches_rows_and_shows_a_regression() -> None:
    def run(rate: float, ready: float, load: float) -> dict[str, object]:
        return {
            "started": "then",
            "machine": {"loadavg_1m": load, "loadavg_end": load},
            "http": {
                "rows": [
                    {"case": "JSON single", "server": "mnist-serve", "workers": 1,
                     "req_per_s": rate, "images_per_s": rate, "requests": int(rate)},
                    {"case": "only now" if load else "only before",
                     "server": "x", "workers": 1, "images_per_s": 1.0},
                ]
            },
            "startup": {"rows": [{"server": "mnist-serve", "workers": 1, "all_s": ready}]},
        }  # fmt: skip

    entries = compare.compare(run(800.0, 1.0, 0.5), run(1000.0, 0.5, 0.0))
    assert [(e["area"], e["row"], e["metric"]) for e in entries] == [
        ("http", "JSON single, mnist-serve, 1", "images_per_s"),
        ("startup", "mnist-serve, 1", "all_s"),
    ]
    assert [e["better"] for e in entries] == [pytest.approx(0.8), pytest.approx(0.5)]
    text = compare.render(entries, run(800.0, 1.0, 0.5), run(1000.0, 0.5, 0.0))
    assert "load 0.5 at the start" in text
    assert "0.80" in text


def test_main_writes_json_and_prints_tables(
    weights_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    assert (
        main(["core", "--quick", "--weights", str(weights_file), "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["core"]["rows"]
    assert "loadavg_1m" in result["machine"]
    printed = capsys.readouterr().out
    assert "## Core forward pass" in printed
    assert str(out) in printed
    assert "load average now" in printed
    again = tmp_path / "again.json"
    argv = ["core", "--quick", "--weights", str(weights_file), "--out", str(again)]
    assert main([*argv, "--compare", str(out)]) == 0
    assert f"## Compared with {out}" in capsys.readouterr().out
    assert main(["nonsense", "--out", str(out)]) == 2


@pytest.mark.e2e
def test_startup_times_every_local_start(weights_file: Path) -> None:
    from bench import startup

    result = startup.run(weights=weights_file, repeats=1)
    rows = {(r["where"], r["server"], r["workers"]): r for r in result["rows"]}
    assert set(rows) == {
        ("local", "mnist-serve", 1),
        ("local", "mnist-serve", 2),
        ("local", "floor", 1),
    }
    for row in rows.values():
        assert 0 < row["first_s"] <= row["all_s"]
        assert row["rss_idle_mib"] > 0
    assert rows[("local", "floor", 1)]["vs_floor"] == 1.0
    assert [i["import"] for i in result["imports"]] == list(startup.IMPORTS)
    assert len(result["targets"]) == 2
    assert result["stops"] == []
    assert "start-up target" in startup.render(result)


@pytest.mark.parametrize(
    ("token", "seconds"),
    [("3.00s,", 3.0), ("999.92ms,", 0.99992), ("850.10us,", 0.0008501)],
)
def test_h2load_durations_in_every_unit(token: str, seconds: float) -> None:
    assert loadgen.h2load_seconds(token) == pytest.approx(seconds)


def test_h2load_duration_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="h2load duration"):
        loadgen.h2load_seconds("3.00h,")
