"""`flowyard demo mnist` against a live server: the whole walk-through, checked from outside.

Runs the real command (as a user would, with FLOWYARD_URL/FLOWYARD_TOKEN), then checks with
independent clients: the held-out accuracy the run recorded, the endpoint's answers for the
ten sample PNGs shipped with the shared MNIST data, and the run as `kfp.Client` sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from fyserver import shared_mnist

def _samples(mnist: Path) -> tuple[np.ndarray, list[int]]:
    from PIL import Image

    files = sorted((mnist / "samples").glob("*.png"))
    rows = [np.asarray(Image.open(f).convert("L"), dtype=np.float32).reshape(-1) / 255.0 for f in files]
    return np.stack(rows), [int(f.stem) for f in files]


@pytest.fixture
def data() -> Path:
    return shared_mnist()


def test_demo_trains_registers_serves_and_answers(server, data: Path) -> None:
    token = server.token()
    env = {**os.environ, "FLOWYARD_URL": server.url, "FLOWYARD_TOKEN": token, "FLOWYARD_NAMESPACE": "admin",
           "HOME": str(server.home)}
    done = subprocess.run([sys.executable, "-m", "flowyard", "demo", "mnist", "--data", str(data)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("load-digits", "train", "evaluate", "register", "deploy"):
        assert f"{step}" in out and "succeeded" in out, out
    assert "10/10 right" in out or "9/10 right" in out, out

    with server.client() as c:
        # held-out accuracy, as recorded on the model version the run registered
        model = c.get("/api/v1/namespaces/admin/registeredmodels/mnist").json()
        version = model["spec"]["aliases"]["production"]
        mv = c.get(f"/api/v1/namespaces/admin/modelversions/mnist-v{version}").json()
        assert mv["spec"]["metrics"]["accuracy"] >= 0.9, mv["spec"]["metrics"]

        # the ten sample digits, through the gateway, in the TF-Serving form and in V2 form
        x, labels = _samples(data)
        r = c.post("/serving/admin/mnist/v1/models/mnist:predict", json={"instances": x.tolist()})
        assert r.status_code == 200, r.text
        assert [int(p) for p in r.json()["predictions"]] == labels
        r = c.post("/serving/admin/mnist/v2/models/mnist/infer", json={"inputs": [
            {"name": "input-0", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
        assert r.status_code == 200, r.text
        assert [int(v) for v in r.json()["outputs"][0]["data"]] == labels

    # an outsider cannot call the endpoint
    assert httpx.post(f"{server.url}/serving/admin/mnist/v1/models/mnist:predict",
                      json={"instances": x[:1].tolist()}).status_code == 401

    import kfp

    runs = kfp.Client(host=server.url, existing_token=token, namespace="admin").list_runs(namespace="admin").runs
    assert runs and runs[0].state == "SUCCEEDED"
    assert runs[0].pipeline_spec["pipelineInfo"]["name"] == "mnist"
