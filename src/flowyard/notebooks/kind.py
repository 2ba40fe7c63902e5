"""`Notebook` (`kubeflow.org/v1`, also `v1beta1`): the Kubeflow manifest of a JupyterLab server.

Only the parts Flowyard uses are read from `spec.template.spec`:
- `containers[0]`: `image` (a Flowyard environment), `resources` (cpu, memory,
  `nvidia.com/gpu`), `env`, `volumeMounts`. Flowyard runs JupyterLab itself, so `command`
  and `args` are refused rather than silently ignored.
- `volumes`: `persistentVolumeClaim.claimName` volumes; `emptyDir` volumes are accepted and
  ignored (Kubeflow's `dshm` at /dev/shm).
Stop and start use Kubeflow's annotation `kubeflow-resource-stopped` (present = stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowyard.errors import Invalid, NotFound
from flowyard.kinds import Kind, Manifest, register
from flowyard.store.resources import check_name
from flowyard.workloads import resources

STOPPED = "kubeflow-resource-stopped"
CREATOR = "notebooks.kubeflow.org/creator"
HOME = "/home/jovyan"
_WHERE = "spec.template.spec"


@dataclass(frozen=True)
class Mount:
    """One claim mounted at `path`."""

    claim: str
    path: str


def container_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The notebook container (`spec.template.spec.containers[0]`)."""
    return spec["template"]["spec"]["containers"][0]


def mounts_of(spec: dict[str, Any]) -> list[Mount]:
    """The claim mounts of a validated spec, in manifest order (emptyDir mounts left out)."""
    pod = spec["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes") or []
              if "persistentVolumeClaim" in v}
    return [Mount(claims[m["name"]], m["mountPath"].rstrip("/") or "/")
            for m in container_of(spec).get("volumeMounts") or [] if m["name"] in claims]


def _check_env(env: object, where: str) -> None:
    if not isinstance(env, list):
        raise Invalid(f"{where} must be a list of {{name, value}}")
    for i, var in enumerate(env):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str) or not var["name"]:
            raise Invalid(f"{where}[{i}] needs a name")
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if "valueFrom" in var and not (isinstance(ref, dict) and ref.get("name") and ref.get("key")):
            raise Invalid(f"{where}[{i}].valueFrom supports secretKeyRef with name and key")


def _check_volumes(pod: dict[str, Any], container: dict[str, Any]) -> None:
    volumes = pod.get("volumes") or []
    if not isinstance(volumes, list):
        raise Invalid(f"{_WHERE}.volumes must be a list")
    names: dict[str, str] = {}
    for i, vol in enumerate(volumes):
        where = f"{_WHERE}.volumes[{i}]"
        if not isinstance(vol, dict) or not isinstance(vol.get("name"), str) or not vol["name"]:
            raise Invalid(f"{where} needs a name")
        if "persistentVolumeClaim" in vol:
            claim = (vol["persistentVolumeClaim"] or {}).get("claimName")
            check_name(claim, f"{where}.persistentVolumeClaim.claimName", 253)
            names[vol["name"]] = "pvc"
        elif "emptyDir" in vol:
            names[vol["name"]] = "emptyDir"
        else:
            raise Invalid(f"{where}: only persistentVolumeClaim (and emptyDir, ignored) volumes are supported")
    mounts = container.get("volumeMounts") or []
    if not isinstance(mounts, list):
        raise Invalid(f"{_WHERE}.containers[0].volumeMounts must be a list")
    paths: set[str] = set()
    leaves: set[str] = set()
    for i, mount in enumerate(mounts):
        where = f"{_WHERE}.containers[0].volumeMounts[{i}]"
        if not isinstance(mount, dict) or mount.get("name") not in names:
            raise Invalid(f"{where}.name must name one of {_WHERE}.volumes ({', '.join(names) or 'none given'})")
        path = mount.get("mountPath")
        if not isinstance(path, str) or not path.startswith("/"):
            raise Invalid(f"{where}.mountPath must be an absolute path such as {HOME} or /data")
        path = path.rstrip("/") or "/"
        if names[mount["name"]] != "pvc":
            continue
        if path in paths:
            raise Invalid(f"{where}.mountPath {path} is mounted twice")
        paths.add(path)
        if path != HOME:
            leaf = path.rsplit("/", 1)[-1]
            if not leaf or leaf in leaves or leaf.startswith("."):
                raise Invalid(f"{where}.mountPath {path}: data volumes appear in the workspace under the last "
                              "part of their path, which must be unique and not hidden")
            leaves.add(leaf)


def _notebook_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = manifest.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec")
    if not isinstance(pod, dict):
        raise Invalid(f"{_WHERE} is required: the pod template with the notebook container")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise Invalid(f"{_WHERE}.containers must list the notebook container")
    container = containers[0]
    where = f"{_WHERE}.containers[0]"
    if not isinstance(container.get("image", "default"), str) or not container.get("image", "default"):
        raise Invalid(f"{where}.image must name a Flowyard environment (see `flowyard env list`), e.g. default")
    if container.get("command") or container.get("args"):
        raise Invalid(f"{where}: command and args are not supported: Flowyard starts JupyterLab itself")
    _check_env(container.get("env") or [], f"{where}.env")
    resources(container.get("resources"), f"{where}.resources")
    _check_volumes(pod, container)
    return spec


def _admit(p: Any, namespace: str, manifest: Manifest) -> None:
    """Refuse a notebook whose environment does not exist (it may still be building)."""
    from flowyard.controllers.environment import ENVIRONMENT

    env = container_of(manifest["spec"]).get("image") or "default"
    if env != "default":
        try:
            p.store.get(ENVIRONMENT, "", env)
        except NotFound:
            raise Invalid(f"{_WHERE}.containers[0].image: environment '{env}' not found: create it with "
                          f"`flowyard env create {env} -r requirements.txt` or use 'default'") from None


NOTEBOOK = register(Kind("Notebook", ("kubeflow.org/v1", "kubeflow.org/v1beta1"), spec_from=_notebook_spec,
                         admit=_admit))
