"""The walk-through notebooks in examples/, executed with nbclient against a live platform.

The kernel gets what a Flowyard notebook server gives its kernels (see
`flowyard.notebooks.launch`): HOME is a workspace holding `~/.config/kfp/context.json`, and
FLOWYARD_URL, FLOWYARD_TOKEN, FLOWYARD_NAMESPACE and KF_PIPELINES_ENDPOINT are set. The
notebooks run unedited; only `MNIST_DATA` points at the shared test data.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from flowyard.notebooks.launch import write_kfp_context
from fyserver import shared_mnist

REPO = Path(__file__).resolve().parents[2]
NS = "admin"


def run_notebook(name: str, srv, workspace: Path, mnist: Path | None = None) -> str:
    """Execute examples/<name> in a kernel set up like a Flowyard notebook's; all its text output."""
    workspace.mkdir(parents=True, exist_ok=True)
    token = srv.token()
    write_kfp_context(workspace, NS, token)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYARD_", "KF_", "JUPYTER_", "MNIST_"))}
    env.update({"HOME": str(workspace), "FLOWYARD_URL": srv.url, "FLOWYARD_TOKEN": token, "FLOWYARD_NAMESPACE": NS,
                "KF_PIPELINES_ENDPOINT": srv.url, "JUPYTER_PREFER_ENV_PATH": "1"})
    if mnist is not None:
        env["MNIST_DATA"] = str(mnist)
    nb = nbformat.read(REPO / "examples" / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}: outputs are stored"
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(workspace)}})
    client.execute(env=env)
    return "\n".join(out.get("text", "") or "".join((out.get("data") or {}).get("text/plain", ""))
                     for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def test_calc_pipeline_notebook(shared_server, tmp_path: Path) -> None:
    text = run_notebook("calc_pipeline.ipynb", shared_server, tmp_path / "home")
    assert "state: SUCCEEDED" in text, text
    assert re.search(r"^result: 26(\.0)?$", text, re.M), text
    with shared_server.client() as c:
        runs = c.get(f"/api/v1/namespaces/{NS}/runs").json()["items"]
    assert any(r["metadata"]["name"].startswith("calc-pipeline") for r in runs), [r["metadata"]["name"] for r in runs]


def test_mnist_notebook(shared_server, tmp_path: Path) -> None:
    text = run_notebook("mnist.ipynb", shared_server, tmp_path / "home", shared_mnist())
    assert "MNIST from" in text and "training: (8000, 784) held out: (2000, 784)" in text, text  # not the 8x8 fallback
    accuracy = float(re.search(r"tracking run \S+: accuracy ([0-9.]+)", text).group(1))
    assert accuracy >= 0.9, text
    expected, predicted, triton = (json.loads(re.search(rf"^{label}: +(\[.*\])$", text, re.M).group(1))
                                   for label in ("expected", "predictions", "tritonclient"))
    assert len(expected) == 10 and sum(a == b for a, b in zip(expected, predicted)) >= 9, text
    assert triton == predicted, text
    with shared_server.client() as c:
        model = c.get(f"/api/v1/namespaces/{NS}/registeredmodels/mnist").json()
        assert model["spec"]["aliases"]["production"] == 1
        version = c.get(f"/api/v1/namespaces/{NS}/modelversions/mnist-v1").json()["spec"]
        assert version["metrics"]["accuracy"] >= 0.9 and version["uri"].startswith("file://" + str(tmp_path))
        run_id = version["tags"]["tracking-run"]
        metrics = c.get(f"/api/v1/namespaces/{NS}/tracking/runs/{run_id}").json()["metrics"]
        assert metrics["accuracy"]["value"] == pytest.approx(accuracy, abs=1e-4) and "loss" in metrics
