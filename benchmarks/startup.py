"""Start-up time (process spawn → /readyz 200) and idle memory of `flowyard up`.

Goals on the 2-core reference machine: ready in < 1.5 s, idle RSS < 150 MB.
Usage: python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil

from _server import Server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    first, warm, rss = [], [], []
    warmup = Server()  # the first run ever may compile bytecode; not counted
    warmup.start()
    warmup.stop()
    for _ in range(args.runs):
        s = Server()
        first.append(s.start())  # fresh home: migrations, admin user, keys
        s.stop()
        warm.append(s.start())  # existing home
        time.sleep(2.0)  # idle
        rss.append(psutil.Process(s.proc.pid).memory_info().rss / 2**20)
        s.stop()
    print(f"{'metric':<34}{'median':>10}{'min':>10}{'max':>10}")
    for name, xs, unit in (("first start → ready (s)", first, ""), ("restart → ready (s)", warm, ""),
                           ("idle RSS (MiB)", rss, "")):
        print(f"{name:<34}{statistics.median(xs):>10.3f}{min(xs):>10.3f}{max(xs):>10.3f}")


if __name__ == "__main__":
    main()
