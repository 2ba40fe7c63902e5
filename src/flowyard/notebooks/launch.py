"""What a notebook server runs as: its workspace, its credentials and its `WorkloadSpec`.

The workspace is the claim mounted at /home/jovyan (or `<name>-workspace`, created when no
mount is there). It is both `HOME` and Jupyter's root folder. Every other mounted claim
(a data volume) appears inside the workspace as a symlink named after the last part of its
mountPath: `/data/train` shows as `~/train`. Several notebooks may mount one data volume.

JupyterLab is `python -m jupyterlab` from the notebook's environment (its bin folder is first
on PATH), on 127.0.0.1 at the executor's port, under `/notebook/<ns>/<name>/`, with
Flowyard's identity provider (`jupyter_auth.py`, copied to `<home>/notebooks/lib` so the
environment needs no flowyard). When a warm socket is given, the command is `warm.py launch`
(`warm.py`): the environment's JupyterLab zygote forks the server, already imported, or the
launcher falls back to the cold `python -m jupyterlab` with the same arguments. The platform is preset inside: `FLOWYARD_URL`,
`FLOWYARD_NAMESPACE`, `FLOWYARD_TOKEN`, `KF_PIPELINES_ENDPOINT` and `~/.config/kfp/context.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from flowyard.errors import Invalid
from flowyard.executor.base import WorkloadSpec
from flowyard.kinds import Manifest
from flowyard.notebooks import volumes
from flowyard.notebooks.kind import HOME, Mount, container_of, mounts_of
from flowyard.notebooks.secret import ENV as SECRET_ENV
from flowyard.platform import Platform
from flowyard.workloads import from_container

AUTH_MODULE = "flowyard_jupyter_auth"
_AUTH_SOURCE = Path(__file__).with_name("jupyter_auth.py")
WARM = str(Path(__file__).with_name("warm.py"))
GRACE_SECONDS = 10.0


def base_url(namespace: str, name: str) -> str:
    """The notebook's URL path under the gateway, with the trailing slash Jupyter wants."""
    return f"/notebook/{namespace}/{name}/"


def workspace_claim(obj: Manifest) -> str:
    """The claim that is the notebook's home: the one mounted at /home/jovyan, else `<name>-workspace`."""
    for mount in mounts_of(obj["spec"]):
        if mount.path == HOME:
            return mount.claim
    return f"{obj['metadata']['name']}-workspace"


def _link(workspace: Path, mount: Mount, target: Path) -> None:
    link = workspace / mount.path.rsplit("/", 1)[-1]
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        raise Invalid(f"volume '{mount.claim}' should appear as ~/{link.name}, but the workspace already has "
                      f"a file or folder of that name: rename it or change the mountPath")
    link.symlink_to(target, target_is_directory=True)


def prepare_workspace(p: Platform, obj: Manifest) -> Path:
    """Bind every claim (creating missing ones), link data volumes in; the workspace folder."""
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    home_claim = workspace_claim(obj)
    workspace = volumes.ensure_claim(p, ns, home_claim, name)
    for mount in mounts_of(obj["spec"]):
        if mount.claim != home_claim:
            _link(workspace, mount, volumes.ensure_claim(p, ns, mount.claim, name))
    return workspace


def write_kfp_context(workspace: Path, namespace: str, token: str) -> Path:
    """`~/.config/kfp/context.json` (mode 0600), so `kfp.Client()` finds its namespace and token."""
    folder = workspace / ".config" / "kfp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "context.json"
    tmp = folder / ".context.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"namespace": namespace, "client_authentication_header_name": "Authorization",
                   "client_authentication_header_value": f"Bearer {token}"}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def auth_dir(p: Platform) -> Path:
    """A folder holding the identity provider module, refreshed from this package."""
    folder = p.settings.home / "notebooks" / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{AUTH_MODULE}.py"
    source = _AUTH_SOURCE.read_bytes()
    if not target.exists() or target.read_bytes() != source:
        tmp = folder / f".{AUTH_MODULE}.tmp"
        tmp.write_bytes(source)
        os.replace(tmp, target)
    return folder


def command(base: str, workspace: Path, warm_socket: str | None = None) -> list[str]:
    """The JupyterLab command line; `{port}` is filled in by the executor.

    With `warm_socket`, the command asks that zygote for the server (cold start if it cannot)."""
    args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base}", f"--ServerApp.root_dir={workspace}",
        "--ServerApp.allow_remote_access=True",
        f"--ServerApp.identity_provider_class={AUTH_MODULE}.FlowyardIdentityProvider",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    if warm_socket:
        return ["python", "-I", "-S", WARM, "launch", warm_socket, "--", *args]
    return ["python", "-m", "jupyterlab", *args]


def workload(p: Platform, obj: Manifest, workload_id: str, workspace: Path, token: str, secret: str,
             labels: dict[str, str], warm_socket: str | None = None) -> WorkloadSpec:
    """The service workload of one start of notebook `obj`; raises Invalid for unresolvable parts."""
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    base = base_url(ns, name)
    container: dict[str, Any] = {**container_of(obj["spec"]), "command": command(base, workspace, warm_socket),
                                  "args": []}
    spec = from_container(p, obj, container, workload_id, kind="service", labels=labels,
                          extra_env={"KF_PIPELINES_ENDPOINT": p.settings.url})
    user_path = spec.env.get("PYTHONPATH")
    forced = {
        "HOME": str(workspace), "NB_PREFIX": base.rstrip("/"), "FLOWYARD_URL": p.settings.url,
        "FLOWYARD_NAMESPACE": ns, "FLOWYARD_TOKEN": token, SECRET_ENV: secret,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(auth_dir(p)), user_path])),
        "JUPYTER_PREFER_ENV_PATH": "1",
    }
    return dataclasses.replace(spec, env={**spec.env, **forced}, workdir=str(workspace),
                               grace_period=GRACE_SECONDS)



# -- warm starts -----------------------------------------------------------------------------

SYSTEM_LABEL = "flowyard.io/system"
"""Label of platform-internal workloads, hidden from user-facing workload counts."""
WARM_ENV_LABEL = "notebooks.flowyard.io/warm-environment"
WARM_NAMESPACE = "flowyard-system"


def _env_slug(environment: str) -> str:
    slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in environment.lower()).strip(".-")
    return slug or "env"


def warm_socket(p: Platform, environment: str) -> str:
    """Where the JupyterLab zygote of `environment` listens (a Unix socket under the home)."""
    return str(p.settings.home / "notebooks" / "warm" / f"{_env_slug(environment)}.sock")


def warm_workload_id(environment: str) -> str:
    return f"{WARM_NAMESPACE}.nb-warm.{_env_slug(environment)}"[:253].rstrip(".-")


def warm_workload(p: Platform, environment: str) -> WorkloadSpec:
    """The zygote of `environment`: a system service workload, no limits, no secrets in its env."""
    folder = p.settings.home / "notebooks" / "warm"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return WorkloadSpec(
        id=warm_workload_id(environment), namespace=WARM_NAMESPACE,
        command=["python", WARM, "serve", warm_socket(p, environment)], kind="service",
        env={"HOME": str(folder), "PYTHONPATH": str(auth_dir(p)), "JUPYTER_PREFER_ENV_PATH": "1"},
        environment=environment, workdir=str(folder), grace_period=2.0,
        labels={SYSTEM_LABEL: "true", WARM_ENV_LABEL: environment},
    )
