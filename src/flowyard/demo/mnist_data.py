"""MNIST for the demo: IDX gz files from a folder or the public mirrors, else scikit-learn's digits.

Images come back as float32 rows of pixel/255 (784 values for 28×28, row-major), the form the
Kubeflow MNIST example sends to its endpoint; labels as int64.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""The standard files and their well-known MD5 sums."""
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")


@dataclass
class Digits:
    """Training and held-out digits, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    side: int
    """Image side in pixels: 28 for MNIST, 8 for the scikit-learn fallback."""
    source: str


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images, labels = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    x = read_idx(images).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    y = read_idx(labels).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} images but {len(y)} labels")
    return x, y


def from_folder(folder: Path, held_out: float = 0.2, seed: int = 0) -> Digits | None:
    """MNIST from `folder`: train/t10k as published, or only t10k split into two parts."""
    train, test = _pair(folder, "train"), _pair(folder, "t10k")
    if train and test:
        return Digits(*train, *test, side=28, source=f"MNIST from {folder}")
    if test or train:
        x, y = test or train
        order = np.random.default_rng(seed).permutation(len(x))
        cut = int(len(x) * (1 - held_out))
        a, b = order[:cut], order[cut:]
        return Digits(x[a], y[a], x[b], y[b], side=28,
                      source=f"MNIST from {folder} ({len(a)} for training, {len(b)} held out)")
    return None


def download(folder: Path, timeout: float = 20) -> bool:
    """Fetch the four files into `folder` from the first mirror that answers; checks MD5 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
            continue
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name, timeout=timeout) as r:
                    part = target.with_suffix(".part")
                    part.write_bytes(r.read())
            except OSError:
                continue
            if _md5(part) == md5:
                part.replace(target)
                break
            part.unlink()
        else:
            return False
    return True


def sklearn_digits(held_out: float = 0.2, seed: int = 0) -> Digits:
    """scikit-learn's bundled 8×8 digits (1,797 images), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - held_out))
    a, b = order[:cut], order[cut:]
    return Digits(x[a], y[a], x[b], y[b], side=8, source="scikit-learn's 8x8 digits (MNIST not found)")


def load(data: Path | None, datasets: Path | None, offline: bool = False) -> Digits:
    """MNIST from `data`, else the platform's `datasets/mnist`, else the mirrors, else 8×8 digits."""
    for folder in (data, datasets / "mnist" if datasets else None):
        if folder is not None and (found := from_folder(folder)) is not None:
            return found
    if not offline and datasets is not None and download(datasets / "mnist"):
        found = from_folder(datasets / "mnist")
        if found is not None:
            return found
    return sklearn_digits()
