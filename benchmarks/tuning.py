"""Tuning: 100 trials of a trivial objective at parallelism 2, Flowyard vs Optuna in-process.

Flowyard runs a Katib Experiment (TPE) whose trials are `python -c` workloads; Optuna runs
the same objective and sampler in this process (`study.optimize(n_jobs=2)`), the floor of
any platform. Printed: wall times, the time each trial holds a parallel slot
(wall × parallelism / trials), and the platform overhead per trial: slot time minus the
objective's own time, which is the trial's program run directly (`python -c`, same code);
also against the bare function call, so the cost of a process per trial shows. The slot time is broken
down from the executor's records: the trial process (runner + interpreter + objective) and
the controller's gap between one trial's end and the next one's start.

    .venv/bin/python benchmarks/tuning.py [--trials 100] [--parallel 2] [--algorithm tpe]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx
from _server import Server

CODE = "x=float('${trialParameters.x}'); y=float('${trialParameters.y}'); print(f'loss={(x-1)**2+(y+2)**2}')"


def objective_code(x: float, y: float) -> float:
    return (x - 1) ** 2 + (y + 2) ** 2


def manifest(name: str, trials: int, parallel: int, algorithm: str) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": "1"}]},
            "parallelTrialCount": parallel, "maxTrialCount": trials, "maxFailedTrialCount": 3,
            "parameters": [{"name": n, "parameterType": "double", "feasibleSpace": {"min": "-3", "max": "3"}}
                           for n in ("x", "y")],
            "trialTemplate": {
                "trialParameters": [{"name": n, "reference": n} for n in ("x", "y")],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "main", "image": "default", "command": ["python", "-c", CODE]}]}}}},
            },
        },
    }


def run_flowyard(trials: int, parallel: int, algorithm: str) -> dict:
    server = Server()
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token()}"},
                          timeout=30) as c:
            base = "/api/v1/namespaces/admin/tuningexperiments"
            t0, posted = time.perf_counter(), time.time()
            r = c.post(base, json=manifest("bench", trials, parallel, algorithm))
            r.raise_for_status()
            while True:
                st = c.get(f"{base}/bench").json().get("status", {})
                if st.get("phase") in ("Succeeded", "Failed"):
                    break
                time.sleep(0.02)
            wall, done = time.perf_counter() - t0, time.time()
            best = st["currentOptimalTrial"]["observation"]["metrics"][0]["min"]
    finally:
        server.stop()
    records = []
    for state in Path(server.home, "workloads").glob("*/state.json"):
        s = json.loads(state.read_text())["status"]
        if ".trial." in s["id"]:
            records.append((s["created_at"], s["started_at"], s["finished_at"]))
    records.sort(key=lambda r: r[1])
    process = [f - s for _, s, f in records]
    admit = [s - c for c, s, _ in records]
    ends = sorted(f for _, _, f in records)
    # the gap a slot stays empty: from a trial's end to the start of the next trial that started after it
    starts = sorted(s for _, s, _ in records)
    gaps = []
    for end in ends[:-parallel]:
        later = [s for s in starts if s >= end]
        if later:
            gaps.append(later[0] - end)
    return {"wall": wall, "phase": st["phase"], "trials": st["trials"], "best": float(best),
            "process": statistics.mean(process), "admit": statistics.mean(admit),
            "gap": statistics.mean(gaps) if gaps else 0.0, "first": starts[0] - posted, "last": done - ends[-1],
            "steady": (ends[-1] - starts[0]) * parallel / len(records)}


def run_optuna(trials: int, parallel: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        return objective_code(trial.suggest_float("x", -3, 3), trial.suggest_float("y", -3, 3))

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=parallel)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(1000):
        objective_code(0.3, 0.2)
    own = (time.perf_counter() - t1) / 1000
    return {"wall": wall, "best": study.best_value, "own": own}


def run_bare(times: int = 20) -> float:
    """Median wall time of the trial's own program run directly (interpreter start + objective)."""
    import subprocess
    import sys

    code = CODE.replace("${trialParameters.x}", "0.5").replace("${trialParameters.y}", "-1.5")
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--algorithm", default="tpe")
    args = ap.parse_args()
    n, k = args.trials, args.parallel
    opt = run_optuna(n, k)
    bare = run_bare()
    fy = run_flowyard(n, k, args.algorithm)
    slot = fy["wall"] * k / n
    steady = fy["steady"]
    print(f"{n} trials, parallelism {k}, {args.algorithm}")
    print(f"  Optuna in-process : wall {opt['wall']:.3f} s  ({opt['wall'] / n * 1000:.1f} ms/trial), best {opt['best']:.4f}")
    print(f"  Flowyard          : wall {fy['wall']:.3f} s  ({fy['phase']}, {fy['trials']} trials), best {fy['best']:.4f}")
    print(f"    experiment created -> first trial started   : {fy['first'] * 1000:.1f} ms")
    print(f"    last trial ended -> experiment Succeeded     : {fy['last'] * 1000:.1f} ms (incl. 20 ms polling)")
    print(f"  slot time per trial, end to end (wall x {k} / {n}) : {slot * 1000:.1f} ms")
    print(f"  slot time per trial, steady (first start..last end): {steady * 1000:.1f} ms")
    print(f"    trial process (runner/fork + objective)     : {fy['process'] * 1000:.1f} ms mean")
    print(f"    submitted -> started (admission)            : {fy['admit'] * 1000:.1f} ms mean")
    print(f"    slot idle between trials (controller)       : {fy['gap'] * 1000:.1f} ms mean")
    print(f"  objective's own time, as a program (python -c): {bare * 1000:.1f} ms median")
    print(f"  objective's own time, as a function call       : {opt['own'] * 1e6:.2f} us")
    print(f"  PLATFORM OVERHEAD PER TRIAL (steady slot - program): {(steady - bare) * 1000:.1f} ms  (goal < 100 ms)")
    print(f"  end-to-end slot - program                       : {(slot - bare) * 1000:.1f} ms")
    print(f"  Flowyard / Optuna wall                          : {fy['wall'] / opt['wall']:.1f}x")


if __name__ == "__main__":
    main()
