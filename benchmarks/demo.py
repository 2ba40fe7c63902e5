"""`flowyard demo mnist`: wall time from a running platform to the endpoint's answers, all steps included.

Prints the seconds of three invocations against one fresh server: the first demo (scikit-learn,
the endpoint created), a second one (load/train/evaluate served from KFP's cache, version 2
registered, the endpoint rolled over to it), and `--tune` (a 4-trial search first). Goal on this 2-core machine: under
2 minutes each. MNIST comes from ../shared/datasets/mnist (the 10,000 t10k digits, split 8,000 /
2,000); pass another folder as the first argument.

Run: `.venv/bin/python benchmarks/demo.py [DATA_DIR]`
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server  # noqa: E402

DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared/datasets/mnist"


def demo(server: Server, token: str, *extra: str) -> float:
    env = {**os.environ, "FLOWYARD_URL": server.url, "FLOWYARD_TOKEN": token, "FLOWYARD_NAMESPACE": "admin",
           "HOME": str(server.home)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flowyard", "demo", "mnist", "--data", str(DATA), *extra],
                          env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"demo failed:\n{done.stdout}\n{done.stderr}")
    right = next((line.strip() for line in done.stdout.splitlines() if "right" in line), "")
    print(f"  {' '.join(extra) or '(defaults)':<22} {took:6.1f} s   {right}")
    return took


def main() -> None:
    server = Server()
    ready = server.start()
    print(f"server ready in {ready:.2f} s; load {os.getloadavg()[0]:.1f}; data {DATA}")
    try:
        token = server.token()
        times = [demo(server, token), demo(server, token), demo(server, token, "--tune")]
    finally:
        server.stop()
    print(f"worst {max(times):.1f} s (goal < 120 s)")


if __name__ == "__main__":
    main()
