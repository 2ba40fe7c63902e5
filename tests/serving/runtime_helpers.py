"""Start model-server replicas (`python -m flowyard.serving.runtime`) on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fyserver import free_port

SECRET = "replica-test-secret"
SECRET_HEADERS = {"X-Flowyard-Serving-Secret": SECRET}
GRPC_SECRET = {"x-flowyard-serving-secret": SECRET}  # gRPC metadata keys are lower-case


class Replica:
    """One replica process; `start()` returns at once, `wait_ready()` waits for /v2/health/ready."""

    def __init__(self, name: str, fmt: str, model_dir: Path, *extra: str, secret: bool = False) -> None:
        self.name = name
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.args = [sys.executable, "-m", "flowyard.serving.runtime", "--name", name, "--format", fmt,
                     "--model-dir", str(model_dir), "--http-port", str(self.http_port),
                     "--grpc-port", str(self.grpc_port), *extra]
        self.env = dict(os.environ)
        if secret:
            self.env["REPLICA_SECRET"] = SECRET
            self.args += ["--secret-env", "REPLICA_SECRET"]
        self.headers = SECRET_HEADERS if secret else {}
        self.log = model_dir.parent / f"{name}-{self.http_port}.log" if model_dir.is_dir() else \
            model_dir.parent / f"{name}.log"

    def start(self) -> Replica:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("wb"))
        return self

    def wait_ready(self, timeout: float = 90) -> Replica:
        deadline = time.monotonic() + timeout
        with httpx.Client() as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"replica exited {self.proc.returncode}: {self.log.read_text()}")
                try:
                    if c.get(self.url + "/v2/health/ready", headers=self.headers).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"replica not ready: {self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def metric(self, text: str, name: str, **labels: str) -> float:
        """The value of one sample in Prometheus text."""
        want = {"model": self.name, **labels}
        for line in text.splitlines():
            if line.startswith(name + "{"):
                sample_labels = dict(p.split("=", 1) for p in line[len(name) + 1:line.index("}")].split(","))
                if all(sample_labels.get(k) == f'"{v}"' for k, v in want.items()):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0
