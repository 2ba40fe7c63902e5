"""The Endpoints pages of the dashboard: `/endpoints` (list), `/endpoints/new` (deploy form) and
`/endpoints/{name}` (status, URLs, ready-to-paste curl and tritonclient examples, traffic split,
revisions, events). `static/endpoints.js` polls `servingstats` for the live request rate and
latency, and posts the deploy form's manifest to the generic API with the session.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from flowyard.errors import FlowyardError, NotFound
from flowyard.kinds import lookup
from flowyard.serving.kind import FORMATS, INFERENCE_SERVICE

PLURAL = INFERENCE_SERVICE.plural


def _items(p: Any, ns: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        items, token = p.store.list(INFERENCE_SERVICE, ns, continue_=token)
        out += items
        if not token:
            return out


def row(obj: dict[str, Any]) -> dict[str, Any]:
    """What the list and the detail page show of one InferenceService."""
    st = obj.get("status") or {}
    pred = (obj.get("spec") or {}).get("predictor") or {}
    model = pred.get("model") or {}
    pc = (st.get("components") or {}).get("predictor") or {}
    ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
    return {"name": obj["metadata"]["name"], "phase": st.get("phase") or "Pending", "url": st.get("url") or "",
            "grpc": st.get("grpcAddress") or "", "message": st.get("message") or ready.get("message") or "",
            "format": (model.get("modelFormat") or {}).get("name", ""), "uri": model.get("storageUri", ""),
            "traffic": [t for t in pc.get("traffic") or [] if t.get("percent")],
            "revisions": st.get("revisions") or [], "replicas": (st.get("modelStatus") or {}).get("copies", {})
            .get("totalCopies", 0), "min": pred.get("minReplicas", 1), "max": pred.get("maxReplicas", pred.get("minReplicas", 1) or 1),
            "canary": pred.get("canaryTrafficPercent"), "coldStart": st.get("lastColdStartSeconds"),
            "conditions": st.get("conditions") or [], "public": bool(st.get("public"))}


INLINE_VALUES = 16
"""Sample inputs up to this many values are written out; larger ones are generated (`[0.0] * 784`)."""
IRIS = [5.1, 3.5, 1.4, 0.2]


class Sample:
    """The input of the "Call it" examples: zeros shaped as the registry signature's first input, else iris-like."""

    def __init__(self, tensor: dict[str, Any] | None = None) -> None:
        self.iris = tensor is None
        tensor = tensor or {"name": "input-0", "datatype": "FP32", "shape": [-1, len(IRIS)]}
        self.name, self.datatype = tensor["name"], tensor["datatype"]
        self.dims = [d if d > 0 else 1 for d in tensor["shape"][1:]]
        self.zero: Any = False if self.datatype == "BOOL" else 0.0 if self.datatype.startswith("FP") else 0

    def _large(self) -> bool:
        return not self.iris and math.prod(self.dims) > INLINE_VALUES

    def value(self, flat: bool) -> Any:
        """The sample as a (nested) list, or, when large, a Python expression such as `[[0.0] * 28] * 28`."""
        if self.iris:
            return IRIS
        dims = [math.prod(self.dims)] if flat else self.dims
        value: Any = repr(self.zero) if self._large() else self.zero
        for d in reversed(dims):
            value = f"[{value}] * {d}" if self._large() else [value] * d
        return value

    def curl_data(self, body: dict[str, Any]) -> str:
        """curl's `-d` argument for `body`, whose "FLAT"/"NESTED" strings stand for the sample: quoted JSON,
        or, when the input is large, a python3 one-liner printing it."""
        text = json.dumps(body)
        for marker, flat in (("FLAT", True), ("NESTED", False)):
            value = self.value(flat)
            text = text.replace(json.dumps(marker), value if self._large() else json.dumps(value))
        return f"\"$(python3 -c 'import json; print(json.dumps({text}))')\"" if self._large() else f"'{text}'"

    def numpy(self) -> str:
        """The line making `x` in the tritonclient example."""
        if self.iris:
            return f"x = np.array([{IRIS}], dtype=np.float32)"
        dtype = "bool_" if self.datatype == "BOOL" else self.datatype.lower().replace("fp", "float")
        return f"x = np.zeros({[1, *self.dims]}, dtype=np.{dtype})"


def sample_of(p: Any, ns: str, uri: str) -> Sample:
    """The example input for a `storageUri`: from the signature of the registry version it names, if any."""
    if not uri.startswith("models:/"):
        return Sample()
    try:
        from flowyard.registry.models import resolve_version

        inputs = ((resolve_version(p, ns, uri).get("spec") or {}).get("signature") or {}).get("inputs") or []
    except FlowyardError:
        return Sample()
    if not inputs or inputs[0]["datatype"] == "BYTES":
        return Sample()
    return Sample(inputs[0])


def examples(r: dict[str, Any], base: str, sample: Sample | None = None) -> dict[str, str]:
    """Ready-to-paste calls of one endpoint (the token is left for the user to fill in)."""
    name, url = r["name"], r["url"] or f"{base}/serving/…/{r['name']}"
    s = sample or Sample()
    host = url.split("://", 1)[-1]
    body = s.curl_data({"inputs": [{"name": s.name, "shape": [1, *s.dims], "datatype": s.datatype, "data": "FLAT"}]})
    auth = "" if r["public"] else '-H "Authorization: Bearer $FLOWYARD_TOKEN" '
    curl = (f"curl -s {auth}-H 'Content-Type: application/json' \\\n  -d {body} \\\n"
            f"  {url}/v2/models/{name}/infer")
    v1 = (f"curl -s {auth}-H 'Content-Type: application/json' \\\n"
          f"  -d {s.curl_data({'instances': ['NESTED']})} \\\n  {url}/v1/models/{name}:predict")
    python = f"""import os
import numpy as np
import tritonclient.http as httpclient

client = httpclient.InferenceServerClient(url="{host}"{', ssl=True' if url.startswith('https') else ''})
headers = {{"Authorization": f"Bearer {{os.environ['FLOWYARD_TOKEN']}}"}}
{s.numpy()}
inp = httpclient.InferInput("{s.name}", list(x.shape), "{s.datatype}")
inp.set_data_from_numpy(x)
result = client.infer("{name}", [inp], headers=dict(headers))
print(result.get_response()["outputs"])
"""
    grpc = f"""import tritonclient.grpc as grpcclient

client = grpcclient.InferenceServerClient(url="{r['grpc']}")
print(client.is_model_ready("{name}", headers={{"authorization": "Bearer " + token}}))
"""
    return {"curl": curl, "v1": v1, "python": python, "grpc": grpc}


def _registry(p: Any, ns: str) -> list[dict[str, Any]] | None:
    """Registered models with their versions and aliases, or None without a model registry."""
    try:
        models_kind, versions_kind = lookup("RegisteredModel"), lookup("ModelVersion")
    except NotFound:
        return None
    versions: dict[str, list[int]] = {}
    for v in p.store.list(versions_kind, ns)[0]:
        spec = v.get("spec") or {}
        model, number = spec.get("model") or spec.get("modelName"), spec.get("version")
        if model and isinstance(number, int):
            versions.setdefault(model, []).append(number)
    out = []
    for m in p.store.list(models_kind, ns)[0]:
        name = m["metadata"]["name"]
        out.append({"name": name, "versions": sorted(versions.get(name, []), reverse=True),
                    "aliases": sorted(((m.get("spec") or {}).get("aliases") or {}).items())})
    return out


def list_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "endpoints")
    if sh.namespace is None:
        return render(sh, "endpoints.html")
    rows = [row(o) for o in _items(sh.platform, sh.namespace)]
    return render(sh, "endpoints.html", rows=rows, editable=sh.can("edit"))


def detail_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    name = request.path_params["name"]
    sh = shell(request, "endpoints")
    if sh.namespace is None:
        return render(sh, "endpoints_detail.html")
    try:
        obj = sh.platform.store.get(INFERENCE_SERVICE, sh.namespace, name)
    except NotFound:
        return render(sh, "endpoints_detail.html", status_code=404, missing=name)
    r = row(obj)
    events = sh.platform.store.list_events(sh.namespace, INFERENCE_SERVICE.name, name, limit=20)
    sample = sample_of(sh.platform, sh.namespace, r["uri"])
    return render(sh, "endpoints_detail.html", r=r, examples=examples(r, sh.platform.settings.url, sample),
                  events=events, editable=sh.can("edit"), manifest=json.dumps(
                      {k: obj[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": name}}, indent=2))


def new_page(request: Request) -> Response:
    from flowyard.ui.routes import render, shell

    sh = shell(request, "endpoints")
    if sh.namespace is None:
        return render(sh, "endpoints_new.html")
    return render(sh, "endpoints_new.html", formats=FORMATS, forbidden=not sh.can("edit"),
                  registry=_registry(sh.platform, sh.namespace), plural=PLURAL)


def install(app: FastAPI) -> None:
    """Add the Endpoints pages to `app`."""
    app.add_api_route("/endpoints", list_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/endpoints/new", new_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/endpoints/{name}", detail_page, methods=["GET"], include_in_schema=False)
