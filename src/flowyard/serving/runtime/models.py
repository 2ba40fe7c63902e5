"""Loaded models behind one interface, one small class per model format.

Files are found in the model directory as KServe's runtimes find them:
- sklearn: `model.joblib`, `model.pickle` or `model.pkl` (exactly one of them);
- xgboost: `model.bst`, `model.json` or `model.ubj`; lightgbm: `model.bst` or `model.txt`;
- onnx: `model.onnx` (onnxruntime, CPU); pytorch: `model.pt` (TorchScript, `torch.jit.load`);
- custom: `model.py` defining exactly one class that has `load()` and `predict(inputs)` methods
  (classes only imported into `model.py` do not count). It is constructed with the keyword
  arguments among `name` and `model_dir` that its `__init__` accepts, then `load()` is called
  once. `predict` (plain or `async`) gets one numpy array when the request has one input,
  otherwise a dict of name to array, and returns an array (or list), a tuple of them, or a dict
  of name to array. The model directory is put first on `sys.path` for its own imports.
A `--model-dir` that names a file is used as the model file itself.

Every model takes a batch: the first dimension of each input is the row count, and outputs keep
it, which is what lets the batcher join requests. A model's `ValueError`/`TypeError` on an input
is the caller's error (400); anything else is the server's (500).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowyard.serving.runtime.errors import InvalidInput, LoadFailed
from flowyard.serving.runtime.tensors import DTYPES, datatype_of

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of the model's signature; `shape` None = unknown rank, -1 = any size."""

    name: str
    datatype: str | None
    shape: tuple[int, ...] | None

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype or "FP64", "shape": list(self.shape or (-1,))}


class Model:
    """A loaded model: its signature and a batched `predict`."""

    platform = ""
    cast_inputs = False  # cast numeric inputs to the signature's datatype (strictly typed runtimes)
    offload = False  # always predict off the event loop (set for async custom models)

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.inputs: list[TensorSpec] = [TensorSpec("input-0", "FP64", None)]
        self.outputs: list[TensorSpec] = [TensorSpec("output-0", None, None)]
        self.default_outputs: tuple[str, ...] | None = None  # None: all that predict returns
        self.load(path)

    def load(self, path: Path) -> None:
        raise NotImplementedError

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        raise NotImplementedError

    def prepare(self, inputs: Arrays) -> Arrays:
        """Check one request's inputs against the signature (names, datatype kinds, shapes)."""
        specs = {s.name: s for s in self.inputs}
        if len(self.inputs) == 1 and len(inputs) == 1:  # one input: any name will do
            pairs = [(given, self.inputs[0], arr) for given, arr in inputs.items()]
        elif set(inputs) != set(specs):
            missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
            what = "; ".join(p for p in (f"missing {missing}" if missing else "",
                                          f"unknown {unknown}" if unknown else "") if p)
            raise InvalidInput(f"the model takes inputs {sorted(specs)}: {what}")
        else:
            pairs = [(given, specs[given], arr) for given, arr in inputs.items()]
        prepared = {}
        for name, spec, arr in pairs:
            if spec.datatype:
                if (spec.datatype == "BYTES") != (arr.dtype.kind in "OSU"):
                    raise InvalidInput(f"input {name!r} has datatype {datatype_of(arr)}, "
                                       f"the model expects {spec.datatype}")
                if self.cast_inputs and spec.datatype != "BYTES" and arr.dtype != DTYPES[spec.datatype]:
                    arr = arr.astype(DTYPES[spec.datatype])
            if spec.shape is not None and (arr.ndim != len(spec.shape) or any(
                    want not in (-1, got) for want, got in zip(spec.shape, arr.shape))):
                raise InvalidInput(f"input {name!r} has shape {list(arr.shape)}, the model expects "
                                   f"{list(spec.shape)} (-1: any size)")
            prepared[spec.name] = arr
        return prepared

    def predict(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        """Run a (batched) request; the model's errors on bad values become `InvalidInput`."""
        try:
            return self.run(inputs, outputs or self.default_outputs)
        except (ValueError, TypeError) as e:
            raise InvalidInput(f"the model rejected the input: {e}") from None

    def metadata(self) -> dict[str, Any]:
        return {"platform": self.platform, "inputs": [s.metadata() for s in self.inputs],
                "outputs": [s.metadata() for s in self.outputs]}


def _one(inputs: Arrays) -> np.ndarray:
    return next(iter(inputs.values()))


def _unknown_output(name: str, known: list[str]) -> InvalidInput:
    return InvalidInput(f"unknown output {name!r}; the model has {known}")


class SKLearnModel(Model):
    platform = "sklearn"
    _METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")

    def load(self, path: Path) -> None:
        import joblib

        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self.model = joblib.load(path)
        n = getattr(self.model, "n_features_in_", None)
        # Without n_features_in_ (e.g. a pipeline that starts with a text vectorizer) the input
        # is whatever the first step takes: no datatype or shape check here.
        self.inputs = [TensorSpec("input-0", "FP64", (-1, n)) if n is not None else TensorSpec("input-0", None, None)]
        classes = getattr(self.model, "classes_", None)
        self.outputs = []
        for method in self._METHODS:
            if callable(getattr(self.model, method, None)):
                if method == "predict":
                    dt = datatype_of(np.asarray(classes)) if classes is not None else "FP64"
                    self.outputs.append(TensorSpec(method, dt, (-1,)))
                else:
                    width = len(classes) if classes is not None and method != "transform" else -1
                    self.outputs.append(TensorSpec(method, "FP64", (-1, width)))
        if not self.outputs:
            raise LoadFailed(f"{type(self.model).__name__} has none of the methods {list(self._METHODS)}")
        self.default_outputs = (self.outputs[0].name,)

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        x = _one(inputs)
        result = {}
        for name in outputs or ():
            if name not in {s.name for s in self.outputs}:
                raise _unknown_output(name, [s.name for s in self.outputs])
            result[name] = np.asarray(getattr(self.model, name)(x))
        return result


class XGBoostModel(Model):
    platform = "xgboost"

    def load(self, path: Path) -> None:
        import xgboost

        self.model = xgboost.Booster(model_file=str(path))
        self.inputs = [TensorSpec("input-0", "FP32", (-1, self.model.num_features()))]
        self.outputs = [TensorSpec("predict", "FP32", None)]
        self.default_outputs = ("predict",)

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        for name in outputs or ():
            if name != "predict":
                raise _unknown_output(name, ["predict"])
        return {"predict": np.asarray(self.model.inplace_predict(_one(inputs)))}


class LightGBMModel(Model):
    platform = "lightgbm"

    def load(self, path: Path) -> None:
        import lightgbm

        self.model = lightgbm.Booster(model_file=str(path))
        self.inputs = [TensorSpec("input-0", "FP64", (-1, self.model.num_feature()))]
        self.outputs = [TensorSpec("predict", "FP64", None)]
        self.default_outputs = ("predict",)

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        for name in outputs or ():
            if name != "predict":
                raise _unknown_output(name, ["predict"])
        return {"predict": np.asarray(self.model.predict(_one(inputs)))}


_ONNX_TYPES = {"tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
               "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
               "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
               "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
               "tensor(string)": "BYTES"}


class ONNXModel(Model):
    platform = "onnxruntime_onnx"
    cast_inputs = True

    def load(self, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def spec(arg: Any) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape) if arg.shape is not None else None
            return TensorSpec(arg.name, _ONNX_TYPES.get(arg.type), shape)

        self.inputs = [spec(a) for a in self.session.get_inputs()]
        self.outputs = [spec(a) for a in self.session.get_outputs() if a.type in _ONNX_TYPES]
        self.default_outputs = tuple(s.name for s in self.outputs)

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        names = list(outputs or self.default_outputs or ())
        known = [s.name for s in self.outputs]
        for name in names:
            if name not in known:
                raise _unknown_output(name, known)
        feeds = {k: (v.astype(str) if v.dtype.kind == "O" else v) for k, v in inputs.items()}
        try:
            results = self.session.run(names, feeds)
        except Exception as e:  # onnxruntime raises its own types for bad feeds
            if type(e).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):
                raise InvalidInput(f"the model rejected the input: {e}") from None
            raise
        return dict(zip(names, (np.asarray(r) for r in results)))


def _named(result: Any) -> Arrays:
    """Outputs from what a TorchScript or custom model returned."""
    if isinstance(result, dict):
        return {str(k): _array(v) for k, v in result.items()}
    if isinstance(result, tuple):
        return {f"output-{i}": _array(v) for i, v in enumerate(result)}
    return {"output-0": _array(result)}


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class TorchScriptModel(Model):
    platform = "pytorch_torchscript"

    def load(self, path: Path) -> None:
        import torch

        self.torch = torch
        self.model = torch.jit.load(str(path), map_location="cpu").eval()
        self.inputs = [TensorSpec("input-0", "FP32", None)]

    def prepare(self, inputs: Arrays) -> Arrays:
        # TorchScript weights are float32 almost always; JSON numbers decode as float64.
        return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()}

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        with self.torch.inference_mode():
            result = self.model(*(self.torch.from_numpy(np.array(v, copy=not v.flags.writeable))
                                  for v in inputs.values()))
        return _select(_named(result), outputs)


def _select(results: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
    if not outputs:
        return results
    for name in outputs:
        if name not in results:
            raise _unknown_output(name, list(results))
    return {name: results[name] for name in outputs}


class CustomModel(Model):
    platform = "custom"

    def load(self, path: Path) -> None:
        model_dir = path.parent
        sys.path.insert(0, str(model_dir))
        spec = importlib.util.spec_from_file_location("model", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["model"] = module
        spec.loader.exec_module(module)
        classes = [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__
                   and callable(getattr(c, "load", None)) and callable(getattr(c, "predict", None))]
        if len(classes) != 1:
            found = ", ".join(c.__name__ for c in classes) or "none"
            raise LoadFailed(f"{path} must define exactly one class with load() and predict() methods "
                             f"(found: {found})")
        cls: Any = classes[0]
        params = inspect.signature(cls).parameters
        kwargs = {k: v for k, v in (("name", self.name), ("model_dir", str(model_dir))) if k in params}
        self.instance: Any = cls(**kwargs)
        self.instance.load()
        self.is_async = self.offload = inspect.iscoroutinefunction(self.instance.predict)
        self.inputs = [TensorSpec("input-0", None, None)]

    def prepare(self, inputs: Arrays) -> Arrays:
        return inputs

    def run(self, inputs: Arrays, outputs: tuple[str, ...] | None) -> Arrays:
        arg = _one(inputs) if len(inputs) == 1 else inputs
        result = self.instance.predict(arg)
        if self.is_async:
            import asyncio

            result = asyncio.run(result)  # in the model thread (`offload`): no loop runs there
        return _select(_named(result), outputs)


_FORMATS: dict[str, tuple[type[Model], tuple[str, ...]]] = {
    "sklearn": (SKLearnModel, ("model.joblib", "model.pickle", "model.pkl")),
    "xgboost": (XGBoostModel, ("model.bst", "model.json", "model.ubj")),
    "lightgbm": (LightGBMModel, ("model.bst", "model.txt")),
    "onnx": (ONNXModel, ("model.onnx",)),
    "pytorch": (TorchScriptModel, ("model.pt",)),
    "custom": (CustomModel, ("model.py",)),
}
FORMATS = tuple(_FORMATS)


def load_model(fmt: str, model_dir: str, name: str) -> Model:
    """Find the model file of `fmt` in `model_dir` and load it; `LoadFailed` says why not."""
    cls, names = _FORMATS[fmt]
    root = Path(model_dir)
    if root.is_file():
        path = root
    elif not root.is_dir():
        raise LoadFailed(f"model directory {model_dir} does not exist")
    else:
        found = [root / n for n in names if (root / n).is_file()]
        if not found:
            raise LoadFailed(f"no {fmt} model file in {model_dir}: expected one of {', '.join(names)}")
        if len(found) > 1:
            raise LoadFailed(f"more than one {fmt} model file in {model_dir}: "
                             f"{', '.join(p.name for p in found)}")
        path = found[0]
    try:
        return cls(name, path)
    except LoadFailed:
        raise
    except Exception as e:
        raise LoadFailed(f"{path.name}: {type(e).__name__}: {e}") from e


def rows(inputs: Arrays) -> int | None:
    """The batch size of a request, or None when its inputs cannot be joined with others."""
    sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None


def split(outputs: Arrays, counts: list[int]) -> list[Arrays] | None:
    """Cut batched outputs back into per-request outputs (None if an output lost the batch dimension)."""
    total = sum(counts)
    if any(a.ndim == 0 or a.shape[0] != total for a in outputs.values()):
        return None
    bounds = np.cumsum([0, *counts])
    return [{k: v[bounds[i]:bounds[i + 1]] for k, v in outputs.items()} for i in range(len(counts))]
