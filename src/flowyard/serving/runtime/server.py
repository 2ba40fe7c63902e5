"""The replica process: parse the command line, bind the ports, load the model, serve.

Ports are bound and answering before the model loads, so `/v2/health/live` is 200 at once and
`/v2/health/ready` turns 200 when loading is done. A model that cannot be loaded ends the
process with exit code 3 after one stderr line `model failed to load: <reason>`, which the
control plane shows in the InferenceService's status. SIGTERM/SIGINT stop accepting new
connections, finish requests in flight, flush the payload log and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import sys

from flowyard.serving.runtime.errors import LoadFailed
from flowyard.serving.runtime.http import HttpServer
from flowyard.serving.runtime.models import FORMATS, load_model
from flowyard.serving.runtime.rest import RestApp
from flowyard.serving.runtime.service import Options, Runtime

LOAD_FAILED = 3
GRACE_SECONDS = 10.0  # how long requests in flight may take to finish after SIGTERM


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flowyard.serving.runtime",
                                description="Serve one model version over V1/V2 REST and V2 gRPC.")
    p.add_argument("--name", required=True, help="model name in URLs and metrics")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--model-dir", required=True, help="folder holding the model file (or the file)")
    p.add_argument("--version", default="1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, default=None)
    p.add_argument("--max-batch-size", type=int, default=1, help="rows per model call (1: no batching)")
    p.add_argument("--max-latency-ms", type=float, default=0.0,
                   help="how long a batch that is not full may wait for more requests")
    p.add_argument("--timeout-s", type=float, default=None, help="per-request limit (queue + prediction)")
    p.add_argument("--payload-log", default=None, help="folder or fsspec URL for sampled request/response logs")
    p.add_argument("--payload-sample", type=float, default=1.0, help="fraction of requests logged (0..1)")
    p.add_argument("--secret-env", default=None,
                   help="environment variable holding the X-Flowyard-Serving-Secret every request must carry")
    return p


def _options(argv: list[str] | None) -> tuple[argparse.Namespace, Options, str | None]:
    p = _parser()
    a = p.parse_args(argv)
    if not a.name or "/" in a.name or ":" in a.name:
        p.error("--name must be non-empty without '/' or ':'")
    if not a.version or "/" in a.version:
        p.error("--version must be non-empty without '/'")
    if a.max_batch_size < 1:
        p.error("--max-batch-size must be at least 1")
    if a.max_latency_ms < 0 or (a.timeout_s is not None and a.timeout_s <= 0):
        p.error("--max-latency-ms must be >= 0 and --timeout-s > 0")
    if not 0 <= a.payload_sample <= 1:
        p.error("--payload-sample must be between 0 and 1")
    secret = None
    if a.secret_env:
        secret = os.environ.get(a.secret_env)
        if not secret:
            p.error(f"--secret-env {a.secret_env}: that environment variable is not set")
    opts = Options(name=a.name, format=a.format, model_dir=a.model_dir, version=a.version,
                   max_batch_size=a.max_batch_size, max_latency_ms=a.max_latency_ms, timeout_s=a.timeout_s,
                   payload_log=a.payload_log, payload_sample=a.payload_sample)
    return a, opts, secret


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(args: argparse.Namespace, options: Options, secret: str | None) -> int:
    runtime = Runtime(options)
    http = HttpServer(RestApp(runtime, secret))
    await http.start(_listen(args.host, args.http_port))
    grpc_server = None
    if args.grpc_port is not None:
        from flowyard.serving.runtime import grpc_server as g

        grpc_server = g.server(runtime, args.host, args.grpc_port, asyncio.get_running_loop(), secret)
        grpc_server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    loading = asyncio.ensure_future(asyncio.to_thread(load_model, options.format, options.model_dir, options.name))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((loading, stopping), return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        try:
            model = loading.result()
        except LoadFailed as e:
            print("model failed to load: " + " ".join(str(e).split()), file=sys.stderr, flush=True)
            stop.set()
            code = LOAD_FAILED
        else:
            gc.collect()
            gc.freeze()  # the model's objects are long-lived: keep them out of every later collection
            runtime.loaded(model)
            grpc_at = f", gRPC {args.host}:{args.grpc_port}" if grpc_server else ""
            print(f"serving {options.name} version {options.version} ({options.format}) on "
                  f"http://{args.host}:{args.http_port}{grpc_at}", file=sys.stderr, flush=True)
    await stopping
    if grpc_server is not None:
        stopped = grpc_server.stop(GRACE_SECONDS)  # its handlers still need the loop: wait off it
        await asyncio.gather(http.shutdown(GRACE_SECONDS), asyncio.to_thread(stopped.wait))
    else:
        await http.shutdown(GRACE_SECONDS)
    runtime.close()
    if not loading.done():  # stopped while loading: a loading thread cannot be interrupted
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    args, options, secret = _options(argv)
    try:
        from uvloop import run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        from asyncio import run  # type: ignore[assignment]
    try:
        return run(serve(args, options, secret))
    except OSError as e:
        print(f"cannot serve: {e}", file=sys.stderr)
        return 1
