"""The model server a serving replica runs: one model version over V1/V2 REST and V2 gRPC.

    python -m flowyard.serving.runtime --name NAME --format FORMAT --model-dir DIR
        [--version V] --http-port P [--grpc-port G] [--host 127.0.0.1]
        [--max-batch-size N] [--max-latency-ms MS] [--timeout-s S]
        [--payload-log DIR_OR_URL --payload-sample FRACTION] [--secret-env VARNAME]

Readiness: `/v2/health/ready` answers 200 once the model is loaded; a model that fails to load
ends the process with exit code 3 and one stderr line `model failed to load: <reason>`.
Modules: `server` (process), `rest` + `v1` + `v2` (HTTP), `grpc_server` + `oip_pb` (gRPC),
`service` (what every front end shares), `models` (formats), `batching`, `tensors`, `metrics`,
`payloads`.
"""
