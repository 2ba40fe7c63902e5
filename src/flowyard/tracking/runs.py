"""Pipeline runs and tracking: the environment a task logs with, and the Run controller's hook.

A pipeline task gets `FLOWYARD_RUN` (the Run's uid) and a `FLOWYARD_TOKEN` of its own: a
namespace-scoped API token of the Run's creator (the namespace owner when the creator is
unknown or no longer an editor), named `run:<ns>/<uid>` and revoked when the run ends or is
deleted. With `FLOWYARD_URL` and `FLOWYARD_NAMESPACE` (set by the engine) this is all that
`flowyard.log_metric` needs inside a task. `sync_run` keeps the run's tracking row in step
with its state and turns the `system.Metrics` artifacts of finished tasks into run metrics.
"""

from __future__ import annotations

import logging
from typing import Any

from flowyard.accounts import Principal
from flowyard.errors import FlowyardError, NotFound
from flowyard.kinds import CREATOR, Manifest
from flowyard.platform import Platform
from flowyard.tracking import store

log = logging.getLogger(__name__)
ENV_RUN = "FLOWYARD_RUN"
_FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


def _token_name(namespace: str, uid: str) -> str:
    return f"run:{namespace}/{uid}"[:128]


def _acting_user(p: Platform, run: Manifest) -> str | None:
    """The Run's creator if still an editor of its namespace, else the namespace owner."""
    from flowyard.namespaces import PROFILE

    ns = run["metadata"]["namespace"]
    candidates = [(run["metadata"].get("annotations") or {}).get(CREATOR)]
    try:
        candidates.append(p.store.get(PROFILE, "", ns)["spec"]["owner"]["name"])
    except (NotFound, KeyError):
        pass
    for user in candidates:
        if not user:
            continue
        try:
            info = p.accounts.get_user(user)
            p.namespaces.require(Principal(user, bool(info["admin"])), ns, "edit")
            return user
        except FlowyardError:
            continue
    return None


def task_env(p: Platform, run: Manifest) -> dict[str, str]:
    """`FLOWYARD_RUN` and, when someone may act for the run, its `FLOWYARD_TOKEN`: minted for the
    run's first task and reused by the others (kept in memory only; a restart mints another)."""
    meta = run["metadata"]
    env = {ENV_RUN: str(meta.get("uid") or meta["name"])}
    user = _acting_user(p, run)
    if user is not None:
        minted: dict[tuple[str, str, str], str] = p.extra.setdefault("run_tokens", {})
        key = (meta["namespace"], env[ENV_RUN], user)
        if key not in minted:
            name = _token_name(meta["namespace"], env[ENV_RUN])
            minted[key] = p.accounts.create_token(user, name, namespace=meta["namespace"])["token"]
        env["FLOWYARD_TOKEN"] = minted[key]
    return env


def revoke_tokens(p: Platform, namespace: str, uid: str) -> None:
    minted: dict[tuple[str, str, str], str] = p.extra.get("run_tokens", {})
    for key in [k for k in minted if k[:2] == (namespace, uid)]:
        minted.pop(key, None)
    p.accounts.revoke_named(_token_name(namespace, uid))


def _metrics_artifacts(entry: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for arts in ((entry.get("outputs") or {}).get("artifacts") or {}).values():
        for art in arts if isinstance(arts, list) else [arts]:
            if not isinstance(art, dict) or (art.get("type") or {}).get("schemaTitle") != "system.Metrics":
                continue
            for key, value in (art.get("metadata") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[str(key)] = float(value)
    return out


def sync_run(p: Platform, run: Manifest, new: dict[str, Any]) -> None:
    """Called by the Run controller with the status it is about to write (never raises)."""
    try:
        old = run.get("status") or {}
        meta = run["metadata"]
        uid, ns = str(meta.get("uid")), meta["namespace"]
        state = store.state_of({"status": new})
        if not old.get("state") or old.get("state") != new.get("state"):
            store.register(p, run)
            store.set_state(p, uid, state)
        old_tasks = old.get("tasks") or {}
        metrics: dict[str, float] = {}
        for path, entry in (new.get("tasks") or {}).items():
            if isinstance(entry, dict) and entry.get("state") == "SUCCEEDED" and \
                    (old_tasks.get(path) or {}).get("state") != "SUCCEEDED":
                metrics.update(_metrics_artifacts(entry))
        if metrics:
            store.log(p, ns, uid, [{"key": k, "value": v} for k, v in metrics.items()])
        if new.get("state") in _FINAL and old.get("state") not in _FINAL:
            revoke_tokens(p, ns, uid)
    except Exception as e:  # noqa: BLE001 - tracking must never stop a run
        log.warning("tracking of run %s: %s", run["metadata"].get("name"), e)


def forget_run(p: Platform, namespace: str, name: str) -> None:
    """The Run was deleted: drop its tracking rows and tokens."""
    try:
        uid = store.delete_run(p, namespace, name)
        if uid:
            revoke_tokens(p, namespace, uid)
    except Exception as e:  # noqa: BLE001 - the next delete of the namespace cleans up anyway
        log.warning("tracking cleanup of run %s: %s", name, e)
