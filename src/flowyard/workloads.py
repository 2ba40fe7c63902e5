"""Turning a Kubernetes container spec into an executor `WorkloadSpec`.

Jobs, trials, notebooks and model servers all describe what to run the Kubernetes way
(`image`, `command`, `args`, `env`, `resources`); here that becomes a local workload: the
image names a Flowyard environment, secrets are resolved from `secretKeyRef`, and
quantities are parsed.
"""

from __future__ import annotations

from typing import Any

from flowyard import vault
from flowyard.errors import Invalid, NotFound
from flowyard.executor.base import Quota, Resources, WorkloadSpec
from flowyard.executor.errors import InvalidWorkload
from flowyard.kinds import Manifest
from flowyard.namespaces import PROFILE, quota_of
from flowyard.platform import Platform

GPU = "nvidia.com/gpu"


def check_container(container: object, where: str) -> dict[str, Any]:
    """Validate the parts of a container spec Flowyard uses; raise Invalid saying what to fix."""
    if not isinstance(container, dict):
        raise Invalid(f"{where} must be an object")
    command = list(container.get("command") or []) + list(container.get("args") or [])
    if not command or not all(isinstance(a, (str, int, float)) for a in command):
        raise Invalid(f"{where}.command (plus args) must be a non-empty list of strings")
    if not isinstance(container.get("image", "default"), str):
        raise Invalid(f"{where}.image must be the name of a Flowyard environment")
    for i, var in enumerate(container.get("env") or []):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str) or not var["name"]:
            raise Invalid(f"{where}.env[{i}] needs a name")
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if "valueFrom" in var and not (isinstance(ref, dict) and ref.get("name") and ref.get("key")):
            raise Invalid(f"{where}.env[{i}].valueFrom supports secretKeyRef with name and key")
    resources(container.get("resources"), f"{where}.resources")
    return container


def resources(spec: object, where: str) -> tuple[Resources, Resources]:
    """(requests, limits) from a Kubernetes `resources` block."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise Invalid(f"{where} must be an object with requests and limits")
    out = []
    for part in ("requests", "limits"):
        block = spec.get(part) or {}
        if not isinstance(block, dict):
            raise Invalid(f"{where}.{part} must be a map of quantities")
        unknown = set(block) - {"cpu", "memory", GPU}
        if unknown:
            raise Invalid(f"{where}.{part}: unknown resource {sorted(unknown)[0]}; use cpu, memory or {GPU}")
        try:
            out.append(Resources.of(block.get("cpu", 0), block.get("memory", 0), int(block.get(GPU, 0))))
        except (InvalidWorkload, ValueError) as e:
            raise Invalid(f"{where}.{part}: {e}") from e
    return out[0], out[1]


def quota(p: Platform, namespace: str) -> Quota | None:
    """The executor's view of a namespace's quota (None when it has none)."""
    try:
        hard = quota_of(p.store.get(PROFILE, "", namespace)["spec"])
    except NotFound:
        return None
    if not hard:
        return None
    return Quota(
        cpu=hard.get("cpu"),
        memory=int(hard["memory"]) if "memory" in hard else None,
        gpu=int(hard["gpu"]) if "gpu" in hard else None,
    )


def environment_of(p: Platform, name: str) -> str:
    """Check that environment `name` exists and is ready; return its name."""
    from flowyard.controllers.environment import ENVIRONMENT

    if name == "default":
        return name
    try:
        env = p.store.get(ENVIRONMENT, "", name)
    except NotFound:
        raise Invalid(f"environment '{name}' not found: create it with `flowyard env create {name} -r requirements.txt`") from None
    if (env.get("status") or {}).get("phase") != "Ready":
        raise Invalid(f"environment '{name}' is not ready yet ({(env.get('status') or {}).get('phase', 'Pending')})")
    return name


def from_container(p: Platform, obj: Manifest, container: dict[str, Any], workload_id: str, *,
                   kind: str = "batch", labels: dict[str, str] | None = None, timeout: float | None = None,
                   extra_env: dict[str, str] | None = None) -> WorkloadSpec:
    """The workload that runs `container` for `obj`; raises Invalid for unresolvable parts."""
    ns = obj["metadata"]["namespace"]
    env = {"FLOWYARD_URL": p.settings.url, "FLOWYARD_NAMESPACE": ns, **(extra_env or {})}
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            try:
                secret = p.store.get(vault.SECRET, ns, ref["name"])
                env[var["name"]] = vault.reveal(secret, ref["key"])
            except NotFound as e:
                if not ref.get("optional"):
                    raise Invalid(f"env {var['name']}: {e.message}") from e
        else:
            env[var["name"]] = str(var.get("value", ""))
    requests, limits = resources(container.get("resources"), "resources")
    command = [str(a) for a in list(container.get("command") or []) + list(container.get("args") or [])]
    try:
        return WorkloadSpec(
            id=workload_id, namespace=ns, command=command, kind=kind,  # type: ignore[arg-type]
            env=env, environment=environment_of(p, container.get("image") or "default"),
            workdir=container.get("workingDir"), requests=requests, limits=limits,
            timeout=timeout, labels=labels or {},
        )
    except InvalidWorkload as e:
        raise Invalid(str(e)) from e
