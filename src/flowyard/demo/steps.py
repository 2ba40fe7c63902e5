"""The MNIST demo's steps as plain functions; the pipeline's components are thin calls to these.

They run inside pipeline tasks (the platform's interpreter, so scikit-learn and, where
installed, torch are there) and talk to the platform with the task's own `FLOWYARD_URL`,
`FLOWYARD_TOKEN`, `FLOWYARD_NAMESPACE` and `FLOWYARD_RUN`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowyard.demo import mnist_data

MODEL = "mnist"


def load(data: str, out_train: str, out_test: str, rows: int | None = None) -> dict[str, Any]:
    """Find the digits (see `mnist_data.load`) and write both parts as .npz files (at most `rows`
    training rows when given)."""
    datasets = Path(os.environ.get("FLOWYARD_DATASETS") or Path.home() / ".flowyard" / "datasets")
    d = mnist_data.load(Path(data) if data else None, datasets, offline=bool(os.environ.get("FLOWYARD_OFFLINE")))
    if rows:
        d.x_train, d.y_train = d.x_train[:rows], d.y_train[:rows]
    for path, x, y in ((out_train, d.x_train, d.y_train), (out_test, d.x_test, d.y_test)):
        with open(path, "wb") as f:
            np.savez_compressed(f, x=x, y=y)
    print(f"digits: {d.source}; {len(d.x_train)} for training, {len(d.x_test)} held out, {d.side}x{d.side}")
    return {"source": d.source, "side": d.side, "train": len(d.x_train), "test": len(d.x_test)}


def _arrays(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z["x"], z["y"]


def train(train_path: str, model_dir: str, framework: str = "sklearn", hidden: int = 128,
          alpha: float = 1e-4, epochs: int = 20, seed: int = 0) -> dict[str, Any]:
    """Fit a classifier and save it where serving finds it (model.joblib or TorchScript model.pt)."""
    x, y = _arrays(train_path)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if framework == "pytorch":
        _train_torch(x, y, Path(model_dir) / "model.pt", hidden, alpha, epochs, seed)
    else:
        import joblib
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=epochs, early_stopping=True,
                            random_state=seed)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at a small epoch budget is expected
            clf.fit(x, y)
        joblib.dump(clf, Path(model_dir) / "model.joblib")
    print(f"trained a {framework} model on {len(x)} digits in {time.monotonic() - started:.1f} s")
    return {"framework": framework, "features": int(x.shape[1])}


def _train_torch(x: np.ndarray, y: np.ndarray, target: Path, hidden: int, alpha: float, epochs: int,
                 seed: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    side = int(round(x.shape[1] ** 0.5))

    class Net(nn.Module):
        """A small CNN; takes rows of side*side floats and answers the digit."""

        def __init__(self) -> None:
            super().__init__()
            self.side = side
            self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def logits(self, rows: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(rows.reshape(-1, 1, self.side, self.side)))

        def forward(self, rows: torch.Tensor) -> torch.Tensor:
            return self.logits(rows.float()).argmax(dim=1)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=alpha)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(max(1, epochs // 5)):
        for idx in torch.randperm(len(xs)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(net.logits(xs[idx]), ys[idx]).backward()
            opt.step()
    net.eval()
    torch.jit.script(net).save(str(target))


def predict(model_dir: str, framework: str, x: np.ndarray) -> np.ndarray:
    """The digits a saved model answers for rows `x` (what the endpoint will answer)."""
    if framework == "pytorch":
        import torch

        net = torch.jit.load(str(Path(model_dir) / "model.pt"))
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()
    import joblib

    return joblib.load(Path(model_dir) / "model.joblib").predict(x)


def evaluate(test_path: str, model_dir: str, framework: str) -> tuple[float, list[list[int]]]:
    """Accuracy and the 10×10 confusion matrix on the held-out digits."""
    x, y = _arrays(test_path)
    got = predict(model_dir, framework, x)
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (y, got), 1)
    accuracy = float((got == y).mean())
    print(f"accuracy on {len(y)} held-out digits: {accuracy:.4f}")
    return accuracy, matrix.tolist()


def _client() -> Any:
    import httpx

    return httpx.Client(base_url=os.environ["FLOWYARD_URL"], timeout=60,
                        headers={"Authorization": f"Bearer {os.environ['FLOWYARD_TOKEN']}"})


def _ok(r: Any) -> Any:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r.json()


def register(accuracy: float, framework: str, features: int, alias: str = "production") -> int:
    """Register this run's model artifact as the next version of `mnist` and move `alias` to it."""
    ns = os.environ["FLOWYARD_NAMESPACE"]
    base = f"/api/v1/namespaces/{ns}/registeredmodels/{MODEL}"
    signature = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, features]}],
                 "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]}
    with _client() as c:
        version = _ok(c.post(f"{base}/versions", json={
            "run": os.environ["FLOWYARD_RUN"], "artifact": "train/model", "format": framework,
            "signature": signature, "metrics": {"accuracy": accuracy},
            "description": "MNIST digits, trained by `flowyard demo mnist`"}))
        number = int(version["spec"]["version"])
        _ok(c.put(f"{base}/aliases/{alias}", json={"version": number}))
    print(f"registered {MODEL} version {number} and moved '{alias}' to it")
    return number


def deploy(framework: str, timeout: float = 300) -> str:
    """Create or update the InferenceService `mnist` serving models:/mnist/production; wait until Ready."""
    ns = os.environ["FLOWYARD_NAMESPACE"]
    path = f"/api/v1/namespaces/{ns}/inferenceservices"
    manifest = {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": MODEL, "annotations": {"serving.flowyard.io/follow-alias": "true"}},
        "spec": {"predictor": {"minReplicas": 1, "model": {
            "modelFormat": {"name": framework}, "storageUri": f"models:/{MODEL}/production"}}},
    }
    with _client() as c:
        r = c.get(f"{path}/{MODEL}")
        if r.status_code == 404:
            _ok(c.post(path, json=manifest))
        else:
            current = _ok(r)
            manifest["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            _ok(c.put(f"{path}/{MODEL}", json=manifest))
        deadline = time.monotonic() + timeout
        while True:
            status = _ok(c.get(f"{path}/{MODEL}")).get("status") or {}
            conditions = {c_["type"]: c_ for c_ in status.get("conditions") or []}
            ready = conditions.get("Ready", {})
            if ready.get("status") == "True" and _serves_latest(status):
                print(f"endpoint ready: {status.get('url')}")
                return str(status.get("url") or "")
            if time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {MODEL} not ready after {timeout:.0f} s: {json.dumps(status)[:500]}")
            time.sleep(0.5)


def _serves_latest(status: dict[str, Any]) -> bool:
    """True once all traffic goes to the latest revision (a redeploy has rolled over)."""
    traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic")
    if not traffic:
        return True
    return all(t.get("latestRevision", True) or not t.get("percent") for t in traffic)
