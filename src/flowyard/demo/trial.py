"""One tuning trial of the MNIST demo: `python -m flowyard.demo.trial --hidden 64 --alpha 1e-4 …`.

Trains on a subsample of the training digits and prints `accuracy=<held-out accuracy>`, the
line Katib's StdOut collector (and Flowyard's) reads as the objective.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from flowyard.demo import steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m flowyard.demo.trial")
    ap.add_argument("--data", default="")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rows", type=int, default=3000, help="Training rows to use (a trial is a quick look).")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        train, test, model = (str(Path(tmp) / n) for n in ("train.npz", "test.npz", "model"))
        steps.load(args.data, train, test, rows=args.rows)
        steps.train(train, model, "sklearn", args.hidden, args.alpha, args.epochs)
        accuracy, _ = steps.evaluate(test, model, "sklearn")
    print(f"accuracy={accuracy:.6f}")


if __name__ == "__main__":
    main()
