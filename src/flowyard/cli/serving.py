"""`flowyard serve NAME --model-uri URI`: deploy a model as an InferenceService and print where it answers.

The same object `flowyard apply -f isvc.yaml` creates from a KServe manifest; `flowyard get
inferenceservices` lists them. Applying again with another URI rolls the endpoint over to it.
"""

from __future__ import annotations

from typing import Any

import click

from flowyard.cli.session import client, namespace_option

FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "custom")


def manifest(name: str, uri: str, fmt: str | None, low: int, high: int | None, canary: int | None) -> dict[str, Any]:
    """The KServe InferenceService manifest the options describe."""
    model: dict[str, Any] = {"storageUri": uri}
    if fmt:
        model["modelFormat"] = {"name": fmt}
    predictor: dict[str, Any] = {"minReplicas": low, "maxReplicas": max(high or low, low, 1), "model": model}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"predictor": predictor}}


@click.command("serve")
@click.argument("name")
@click.option("--model-uri", "uri", required=True, help="file:///…, s3://…, or models:/<name>/<version-or-alias>.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Model format (from the registry for models:/…).")
@click.option("--min-replicas", "low", type=click.IntRange(0, 16), default=1, show_default=True,
              help="0 scales to zero when idle.")
@click.option("--max-replicas", "high", type=click.IntRange(1, 16), help="Default: the minimum (at least 1).")
@click.option("--canary", type=click.IntRange(0, 100), help="Percent of traffic for the new model on an update.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it is Ready (or Failed).")
@namespace_option
def serve(name: str, uri: str, fmt: str | None, low: int, high: int | None, canary: int | None, wait: bool,
          namespace: str | None) -> None:
    """Deploy (or update) a model endpoint and print its REST URL and gRPC address."""
    c = client()
    obj, created = c.apply_one(manifest(name, uri, fmt, low, high, canary), namespace)
    click.echo(f"inferenceservice/{name} {'created' if created else 'configured'}")
    if not wait:
        return
    obj = c.wait("inferenceservices", name, ("Ready", "Idle", "Failed"), namespace=namespace)
    st = obj.get("status") or {}
    if st.get("phase") == "Failed":
        raise click.ClickException(f"inferenceservice/{name} failed: {st.get('message', '')}")
    click.echo(f"REST: {st.get('url')}  (e.g. POST {st.get('url')}/v2/models/{name}/infer)")
    click.echo(f"gRPC: {st.get('grpcAddress')}")
