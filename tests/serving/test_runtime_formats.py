"""Every model format the replica loads (tiny models), readiness while loading, timeouts and
load failures (exit code 3 and one stderr line)."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from runtime_helpers import Replica

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.25
W = np.array([[1, 0], [0, 1], [1, 1]], np.float32)

CUSTOM = '''
import asyncio
import time

import numpy as np


class Helper:  # no load/predict: not the model
    pass


class Doubler:
    def __init__(self, name, model_dir):
        self.name = name

    def load(self):
        time.sleep(1.0)  # readiness must wait for this

    async def predict(self, inputs):
        x = np.asarray(inputs)
        if x.ravel()[0] == 99:
            await asyncio.sleep(3)
        return {"doubled": x * 2, "total": x.sum(axis=1)}
'''


def _xgboost(d: Path) -> object:
    import xgboost

    booster = xgboost.train({"objective": "reg:squarederror", "nthread": 1, "max_depth": 2},
                            xgboost.DMatrix(X, label=Y), num_boost_round=4)
    booster.save_model(d / "model.json")
    return lambda x: booster.inplace_predict(x)


def _lightgbm(d: Path) -> object:
    import lightgbm

    booster = lightgbm.train({"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 2},
                             lightgbm.Dataset(X.astype(np.float64), Y), num_boost_round=4)
    booster.save_model(d / "model.txt")
    return lambda x: booster.predict(x)


def _onnx(d: Path) -> object:
    from onnx import TensorProto, helper, numpy_helper, save

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["scores"])],
        "linear", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "b")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), d / "model.onnx")
    return lambda x: x @ W + np.array([0.5, -0.5], np.float32)


def _pytorch(d: Path) -> object:
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what the format names
        torch.jit.script(layer).save(str(d / "model.pt"))
    return lambda x: layer(torch.from_numpy(x)).detach().numpy()


def _custom(d: Path) -> object:
    (d / "model.py").write_text(CUSTOM)
    return lambda x: x * 2


BUILDERS = {"xgboost": _xgboost, "lightgbm": _lightgbm, "onnx": _onnx, "pytorch": _pytorch, "custom": _custom}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Replica, object]]]:
    root = tmp_path_factory.mktemp("formats")
    started = {}
    for fmt, build in BUILDERS.items():
        (root / fmt).mkdir()
        expected = build(root / fmt)
        extra = ["--timeout-s", "0.5"] if fmt == "custom" else []
        started[fmt] = (Replica(fmt, fmt, root / fmt, *extra).start(), expected)
    yield started
    for r, _ in started.values():
        r.stop()


def test_custom_model_is_live_at_once_and_ready_after_load(replicas: dict[str, tuple[Replica, object]]) -> None:
    r, _ = replicas["custom"]
    with httpx.Client(base_url=r.url) as c:
        deadline = time.monotonic() + 60
        while True:  # live as soon as the port answers, while load() still sleeps
            try:
                live = c.get("/v2/health/live")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        ready = c.get("/v2/health/ready")
        assert live.status_code == 200
        assert ready.status_code == 503 and "loading" in ready.json()["error"]
        assert c.get("/v2/models/custom").status_code == 503
    r.wait_ready()


@pytest.mark.parametrize("fmt", list(BUILDERS))
def test_each_format_over_v2_json_and_grpc(replicas: dict[str, tuple[Replica, object]], fmt: str) -> None:
    r, expected = replicas[fmt]
    r.wait_ready()
    x = X[:4]
    want = np.asarray(expected(x))  # type: ignore[operator]
    with httpx.Client(base_url=r.url) as c:
        meta = c.get(f"/v2/models/{fmt}").json()
        name = meta["inputs"][0]["name"]
        body = {"inputs": [{"name": name, "shape": [4, 3], "datatype": "FP32", "data": x.ravel().tolist()}]}
        res = c.post(f"/v2/models/{fmt}/infer", json=body)
        assert res.status_code == 200, res.text
        out = res.json()["outputs"][0]
        np.testing.assert_allclose(np.array(out["data"]).reshape(out["shape"]), want, rtol=1e-4, atol=1e-5)
        v1 = c.post(f"/v1/models/{fmt}:predict", json={"instances": x.tolist()})
        assert v1.status_code == 200, v1.text
        predictions = v1.json()["predictions"]
        if fmt == "custom":  # two outputs: one object per row, as TF Serving writes them
            predictions = [p["doubled"] for p in predictions]
        np.testing.assert_allclose(np.array(predictions), want, rtol=1e-4, atol=1e-5)
    g = tgrpc.InferenceServerClient(r.grpc)
    i = tgrpc.InferInput(name, [4, 3], "FP32")
    i.set_data_from_numpy(x)
    result = g.infer(fmt, [i])
    first = result.get_response().outputs[0].name
    np.testing.assert_allclose(result.as_numpy(first), want, rtol=1e-4, atol=1e-5)


def test_onnx_signature_names_and_wrong_rank(replicas: dict[str, tuple[Replica, object]]) -> None:
    r, _ = replicas["onnx"]
    r.wait_ready()
    c = thttp.InferenceServerClient(r.url.removeprefix("http://"))
    meta = c.get_model_metadata("onnx")
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["outputs"][0]["name"] == "scores" and meta["platform"] == "onnxruntime_onnx"
    i = thttp.InferInput("features", [3], "FP64")  # FP64 is cast to the graph's FP32; the rank is wrong
    i.set_data_from_numpy(np.ones(3))
    with pytest.raises(Exception, match=r"has shape \[3\], the model expects \[-1, 3\]"):
        c.infer("onnx", [i])


def test_custom_model_outputs_and_timeout(replicas: dict[str, tuple[Replica, object]]) -> None:
    r, _ = replicas["custom"]
    r.wait_ready()
    c = thttp.InferenceServerClient(r.url.removeprefix("http://"))
    i = thttp.InferInput("anything", [2, 2], "INT64")
    i.set_data_from_numpy(np.array([[1, 2], [3, 4]]))
    res = c.infer("custom", [i], outputs=[thttp.InferRequestedOutput("total")])
    assert res.as_numpy("total").tolist() == [3, 7] and res.as_numpy("doubled") is None
    with httpx.Client(base_url=r.url) as h:
        slow = h.post("/v2/models/custom/infer", json={"inputs": [
            {"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [99]}]})
        assert slow.status_code == 504 and "timeout of 0.5 s" in slow.json()["error"]
        errors = r.metric(h.get("/metrics").text, "flowyard_replica_request_errors_total", code="504")
        assert errors == 1


@pytest.mark.parametrize(("fmt", "files", "reason"), [
    ("sklearn", {}, "no sklearn model file in"),
    ("sklearn", {"model.joblib": "", "model.pkl": ""}, "more than one sklearn model file"),
    ("onnx", {"model.onnx": "not a graph"}, "model.onnx:"),
    ("custom", {"model.py": "class A:\n    pass\n"}, "exactly one class with load() and predict()"),
])
def test_load_failure_exits_3_with_one_line(tmp_path: Path, fmt: str, files: dict[str, str], reason: str) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    r = Replica("broken", fmt, d)
    proc = subprocess.run(r.args, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("model failed to load: ")]
    assert len(lines) == 1 and reason in lines[0], proc.stderr


def test_bad_command_line_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowyard.serving.runtime", "--name", "m", "--format", "sklearn",
                           "--model-dir", str(tmp_path), "--http-port", "0", "--secret-env", "FY_UNSET_SECRET_VAR"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "FY_UNSET_SECRET_VAR" in proc.stderr
