"""The model server replica with a scikit-learn model, through real clients.

One replica (secret required, batching on, payload log on) serves every test of the module:
tritonclient.http (binary and JSON), tritonclient.grpc, the TF-Serving `instances` form of the
Kubeflow MNIST notebook, curl-style V2 JSON, errors, metrics, batching and the secret.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from runtime_helpers import GRPC_SECRET, SECRET_HEADERS, Replica
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

X, Y = load_digits(return_X_y=True)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return LogisticRegression(max_iter=2000).fit(X[:600], Y[:600])


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory, model: LogisticRegression) -> Iterator[Replica]:
    root = tmp_path_factory.mktemp("sk")
    (root / "model").mkdir()
    joblib.dump(model, root / "model" / "model.joblib")
    r = Replica("digits", "sklearn", root / "model", "--version", "3", "--max-batch-size", "32",
                "--max-latency-ms", "20", "--timeout-s", "30", "--payload-log", str(root / "payloads"),
                "--payload-sample", "1", secret=True).start().wait_ready()
    r.payloads = root / "payloads"  # type: ignore[attr-defined]
    yield r
    assert r.stop() == 0


def _http(replica: Replica) -> httpx.Client:
    return httpx.Client(base_url=replica.url, headers=SECRET_HEADERS, timeout=30)


def test_tritonclient_http_binary_and_json(replica: Replica, model: LogisticRegression) -> None:
    c = thttp.InferenceServerClient(replica.url.removeprefix("http://"))
    h = SECRET_HEADERS
    assert c.is_server_live() and c.is_server_ready(headers=h) and c.is_model_ready("digits", headers=h)
    assert c.is_model_ready("digits", "3", headers=h)
    assert "binary_tensor_data" in c.get_server_metadata(headers=h)["extensions"]
    meta = c.get_model_metadata("digits", headers=h)
    assert meta["inputs"][0]["shape"] == [-1, 64] and meta["outputs"][0]["name"] == "predict"
    x = X[600:604]
    binary = thttp.InferInput("x", list(x.shape), "FP64")
    binary.set_data_from_numpy(x)  # binary_data=True is tritonclient's default, outputs binary too
    # tritonclient adds Inference-Header-Content-Length to the headers dict it is given: pass copies
    r = c.infer("digits", [binary], headers=dict(h), request_id="req-1")
    assert r.get_response()["id"] == "req-1" and r.get_response()["model_version"] == "3"
    np.testing.assert_array_equal(r.as_numpy("predict"), model.predict(x))
    plain = thttp.InferInput("x", list(x.shape), "FP64")
    plain.set_data_from_numpy(x, binary_data=False)
    outs = [thttp.InferRequestedOutput("predict", binary_data=False),
            thttp.InferRequestedOutput("predict_proba", binary_data=True)]
    r = c.infer("digits", [plain], outputs=outs, model_version="3", headers=dict(h))
    np.testing.assert_array_equal(r.as_numpy("predict"), model.predict(x))
    np.testing.assert_allclose(r.as_numpy("predict_proba"), model.predict_proba(x))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\].*expects \[-1, 64\]"):
        bad = thttp.InferInput("x", [1, 3], "FP64")
        bad.set_data_from_numpy(np.ones((1, 3)))
        c.infer("digits", [bad], headers=dict(h))


def test_tritonclient_grpc(replica: Replica, model: LogisticRegression) -> None:
    c = tgrpc.InferenceServerClient(replica.grpc)
    h = GRPC_SECRET
    assert c.is_server_live() and c.is_server_ready(headers=h) and c.is_model_ready("digits", headers=h)
    assert c.get_server_metadata(headers=h).name == "flowyard"
    meta = c.get_model_metadata("digits", headers=h)
    assert list(meta.inputs[0].shape) == [-1, 64] and meta.versions == ["3"]
    x = X[604:610].astype(np.float32)
    i = tgrpc.InferInput("x", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    r = c.infer("digits", [i], outputs=[tgrpc.InferRequestedOutput("predict"),
                                         tgrpc.InferRequestedOutput("predict_proba")], headers=h)
    np.testing.assert_array_equal(r.as_numpy("predict"), model.predict(x))
    assert r.as_numpy("predict_proba").shape == (6, 10)
    for name, version, code in (("nope", "", grpc.StatusCode.NOT_FOUND), ("digits", "9", grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(InferenceServerException) as e:
            c.infer(name, [i], model_version=version, headers=h)
        assert e.value.status() == f"StatusCode.{code.name}" and name in e.value.message()
    bad = tgrpc.InferInput("x", [2, 5], "FP32")
    bad.set_data_from_numpy(np.ones((2, 5), np.float32))
    with pytest.raises(InferenceServerException, match="expects") as e:
        c.infer("digits", [bad], headers=h)
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_grpc_typed_contents_without_raw(replica: Replica, model: LogisticRegression) -> None:
    """A client that fills `fp64_contents` instead of raw bytes (as the KServe client can)."""
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(replica.grpc) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="digits", id="typed")
        t = req.inputs.add(name="x", datatype="FP64", shape=[2, 64])
        t.contents.fp64_contents.extend(X[:2].ravel().tolist())
        resp = stub.ModelInfer(req, metadata=list(GRPC_SECRET.items()))
        assert resp.id == "typed" and resp.outputs[0].name == "predict"
        assert np.frombuffer(resp.raw_output_contents[0], np.int64).tolist() == model.predict(X[:2]).tolist()


def test_tf_serving_instances_form_of_the_mnist_notebook(replica: Replica, model: LogisticRegression) -> None:
    x = X[610:613]
    with _http(replica) as c:
        assert c.get("/").json() == {"status": "alive"}  # the KServe V1 client's liveness check
        assert c.get("/v1/models").json() == {"models": ["digits"]}
        status = c.get("/v1/models/digits").json()
        assert status["ready"] is True and status["model_version_status"][0]["state"] == "AVAILABLE"
        sig = c.get("/v1/models/digits/metadata").json()["metadata"]["signature_def"]["signature_def"]
        assert sig["serving_default"]["inputs"]["input-0"]["dtype"] == "DT_DOUBLE"
        r = c.post("/v1/models/digits:predict",
                   content=json.dumps({"signature_name": "serving_default", "instances": x.tolist()}))
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": model.predict(x).tolist()}
        r = c.post("/v1/models/digits/versions/3:predict", json={"inputs": x.tolist()})
        assert r.json() == {"outputs": model.predict(x).tolist()}
        r = c.post("/v1/models/digits:predict", json={"instances": [{"pixels": row} for row in x.tolist()]})
        assert r.json() == {"predictions": model.predict(x).tolist()}


def test_curl_style_v2_json(replica: Replica, model: LogisticRegression) -> None:
    body = {"id": "c1", "inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP64",
                                     "data": X[613:615].ravel().tolist()}],
            "outputs": [{"name": "predict"}]}
    with _http(replica) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2/models/digits/versions/3/ready").json()["ready"] is True
        r = c.post("/v2/models/digits/infer", content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "c1" and out["model_name"] == "digits" and out["model_version"] == "3"
        assert out["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [2],
                                   "data": model.predict(X[613:615]).tolist()}]
        nested = {"inputs": [{"name": "p", "shape": [1, 64], "datatype": "INT64", "data": [X[0].astype(int).tolist()]}]}
        assert c.post("/v2/models/digits/infer", json=nested).json()["outputs"][0]["data"] == \
            model.predict(X[:1]).tolist()


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/v2/models/digits/infer", b"{not json", 400, "not valid JSON"),
    ("/v2/models/digits/infer", {"inputs": []}, 400, 'non-empty "inputs"'),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64",
                                             "data": [1, 2, 3]}]}, 400, "3 data elements do not fill shape [1, 64]"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                                             "data": [1, 2, 3]}]}, 400, "has shape [1, 3], the model expects [-1, 64]"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32",
                                             "data": ["a", "b"]}]}, 400, "FP32 cannot hold strings"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [2], "datatype": "INT32",
                                             "data": [1.5, 2]}]}, 400, "INT32 cannot hold non-integer numbers"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT",
                                             "data": [1]}]}, 400, "unknown datatype 'FLOAT'"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "BYTES",
                                             "data": ["a"] * 64}]}, 400, "has datatype BYTES, the model expects FP64"),
    ("/v2/models/digits/infer", {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [0] * 64}],
                                 "outputs": [{"name": "explain"}]}, 400, "unknown output 'explain'"),
    ("/v2/models/nope/infer", {"inputs": []}, 404, "model 'nope' is not served here"),
    ("/v2/models/digits/versions/7/infer", {"inputs": []}, 404, "no version '7'"),
    ("/v1/models/digits:predict", {"rows": []}, 400, 'either "instances"'),
    ("/v1/models/digits:predict", {"instances": [[1, 2]]}, 400, "has shape [1, 2]"),
    ("/v1/models/other:predict", {"instances": [[1]]}, 404, "not served here"),
    ("/v1/models/digits:explain", {"instances": [[1]]}, 404, "answers :predict"),
])
def test_bad_requests_get_4xx_with_a_message(replica: Replica, path: str, body: object, status: int,
                                            message: str) -> None:
    with _http(replica) as c:
        r = c.post(path, content=body if isinstance(body, bytes) else json.dumps(body))
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_binary_extension_errors_and_methods(replica: Replica) -> None:
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 512}}]}).encode()
    with _http(replica) as c:
        r = c.post("/v2/models/digits/infer", content=header + b"\0" * 100,
                   headers={"Inference-Header-Content-Length": str(len(header))})
        assert r.status_code == 400 and "binary_data_size 512 does not fit" in r.json()["error"]
        ok = header.replace(b"512", b"512")
        r = c.post("/v2/models/digits/infer", content=ok + X[0].astype("<f8").tobytes(),
                   headers={"Inference-Header-Content-Length": str(len(ok))})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0]
        r = c.get("/v2/models/digits/infer")
        assert r.status_code == 405 and "answers POST" in r.json()["error"]
        assert c.get("/nowhere").status_code == 404


def test_http_pipelining_and_malformed_requests(replica: Replica) -> None:
    """Pipelined requests are answered in order; HTTP/1.0 closes; garbage gets a 400 body."""
    secret = "".join(f"{k}: {v}\r\n" for k, v in SECRET_HEADERS.items()).encode()
    with socket.create_connection(("127.0.0.1", replica.http_port), timeout=30) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v2 HTTP/1.1\r\nHost: x\r\n" + secret + b"\r\n"
                  b"GET /v2/health/ready HTTP/1.0\r\n" + secret + b"\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3, data
    assert answers[0].endswith(b'{"live":true}') and b'"extensions"' in answers[1]
    assert b"connection: close" in answers[2] and answers[2].endswith(b'{"ready":true}')
    with socket.create_connection(("127.0.0.1", replica.http_port), timeout=30) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 ") and b"malformed HTTP request" in reply


def test_secret_is_required_except_for_liveness(replica: Replica) -> None:
    with httpx.Client(base_url=replica.url) as c:
        assert c.get("/v2/health/live").status_code == 200
        for path in ("/v2/health/ready", "/v2/models/digits", "/metrics", "/v1/models/digits"):
            r = c.get(path)
            assert r.status_code == 403 and "X-Flowyard-Serving-Secret" in r.json()["error"]
        assert c.get("/v2/health/ready", headers={"X-Flowyard-Serving-Secret": "wrong"}).status_code == 403
    g = tgrpc.InferenceServerClient(replica.grpc)
    assert g.is_server_live()
    with pytest.raises(InferenceServerException) as e:
        g.is_server_ready()
    assert e.value.status() == "StatusCode.PERMISSION_DENIED"


def test_concurrent_requests_are_batched_and_metered(replica: Replica, model: LogisticRegression) -> None:
    with _http(replica) as c:
        before = c.get("/metrics").text

    def one(i: int) -> list[int]:
        with _http(replica) as c:
            r = c.post("/v2/models/digits/infer", json={"inputs": [{"name": "x", "shape": [1, 64],
                                                                  "datatype": "FP64", "data": X[i].tolist()}]})
            return r.json()["outputs"][0]["data"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    assert [a[0] for a in answers] == model.predict(X[:64]).tolist()  # each request got its own rows back
    with _http(replica) as c:
        after = c.get("/metrics").text
    m = replica.metric
    def delta(name: str) -> float:
        return m(after, name, version="3") - m(before, name, version="3")

    calls, rows = delta("flowyard_replica_batch_size_count"), delta("flowyard_replica_batch_size_sum")
    assert rows == 64 and calls < 64, (calls, rows)  # fewer model calls than requests: batched
    assert delta("flowyard_replica_model_seconds_count") == calls
    assert m(after, "flowyard_replica_requests_total", protocol="v2") >= 64
    assert m(after, "flowyard_replica_request_duration_seconds_count", protocol="v2") >= 64
    assert m(after, "flowyard_replica_request_errors_total", protocol="v2", code="400") >= 1
    assert m(after, "flowyard_replica_model_ready", version="3") == 1


def test_payload_log_has_requests_and_responses(replica: Replica) -> None:
    with _http(replica) as c:
        c.post("/v2/models/digits/infer", json={"id": "logged-1", "inputs": [
            {"name": "x", "shape": [1, 64], "datatype": "FP64", "data": X[5].tolist()}]}).raise_for_status()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [json.loads(line) for f in Path(replica.payloads).glob("*.jsonl")  # type: ignore[attr-defined]
                   for line in f.read_text().splitlines()]
        logged = [r for r in records if r["id"] == "logged-1"]
        if logged:
            break
        time.sleep(0.2)
    assert logged, records
    rec = logged[0]
    assert rec["model"] == "digits" and rec["version"] == "3" and rec["protocol"] == "v2"
    assert rec["request"]["inputs"][0]["shape"] == [1, 64]
    assert rec["response"]["outputs"][0]["name"] == "predict"
