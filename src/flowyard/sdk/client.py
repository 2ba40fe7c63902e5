"""`Client`: the Python face of Flowyard's REST API, and what the CLI is built on.

Resources are addressed Kubernetes style by kind (name, singular or plural), name and
namespace; everything else (users, tokens, members) has a small helper. Server errors come
back as the matching `flowyard.errors` class carrying the server's message.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, overload

from flowyard.errors import AlreadyExists, Invalid, NotFound
from flowyard.sdk import config
from flowyard.sdk.errors import NotConfigured, WaitTimeout
from flowyard.sdk.kinds import KindCatalog, KindInfo
from flowyard.sdk.transport import Transport

Manifest = dict[str, Any]


class Client:
    """A connection to one Flowyard server as one user.

    Each argument left out is taken from `FLOWYARD_URL`, `FLOWYARD_TOKEN` and
    `FLOWYARD_NAMESPACE`, then from the login saved by `flowyard login` (its token and
    settings only when its URL is the one in use, so a token never goes to another server).
    `verify` is True, False or a CA bundle path; None means the saved login's choice, else True.
    Without any namespace the caller's own one is used (from `whoami`).
    """

    def __init__(self, url: str | None = None, token: str | None = None, namespace: str | None = None,
                 verify: bool | str | None = None, timeout: float = 30.0) -> None:
        url = url or os.environ.get("FLOWYARD_URL") or None
        token = token or os.environ.get("FLOWYARD_TOKEN") or None
        namespace = namespace or os.environ.get("FLOWYARD_NAMESPACE") or None
        saved = _saved_login(url, needed=not (url and token))
        if saved is not None:
            url, token = url or saved.url, token or saved.token
            namespace = namespace or saved.namespace
            verify = saved.verify if verify is None else verify
        if not url:
            raise NotConfigured("no Flowyard server given: run `flowyard login --url URL` or set FLOWYARD_URL")
        self.url = url.rstrip("/")
        self._namespace = namespace
        self._http = Transport(self.url, token, True if verify is None else verify, timeout)
        self._kinds = KindCatalog(lambda: self._http.request("GET", "/api/v1/kinds"))

    # -- plumbing --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """A raw API call (`path` under the server root); the decoded JSON answer."""
        return self._http.request(method, path, json=json, params=params)

    @property
    def token(self) -> str | None:
        """The API token in use (to hand to another client, e.g. `kfp.Client(existing_token=...)`)."""
        return self._http.token

    @property
    def namespace(self) -> str:
        """The default namespace: given, from the environment or login, else the caller's own."""
        if self._namespace is None:
            me = self.whoami()
            names = [n["name"] for n in me.get("namespaces", [])]
            if me.get("tokenNamespace"):
                names = [me["tokenNamespace"]]
            if not names:
                raise Invalid(f"user '{me['username']}' is in no namespace: name one (-n NS) or ask a "
                              "namespace admin to add you")
            self._namespace = me["username"] if me["username"] in names else names[0]
        return self._namespace

    def kind(self, word: str) -> KindInfo:
        """The kind called `word` (kind name, singular or plural, any case)."""
        return self._kinds.resolve(word)

    def kind_of(self, manifest: Manifest) -> KindInfo:
        """The kind a manifest means, by its apiVersion and kind (KFP's and Katib's `Experiment` differ)."""
        return self._kinds.for_manifest(manifest.get("apiVersion"), str(manifest.get("kind")))

    def kinds(self) -> list[KindInfo]:
        """Every kind the server knows."""
        return self._kinds.all()

    def _ns(self, info: KindInfo, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if info.namespaced else None

    # -- identity --------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """`{"username", "admin", "namespaces": [{"name", "role"}], ...}` of the caller."""
        return self._http.request("GET", "/api/v1/auth/whoami")

    # -- resources -------------------------------------------------------------------------

    def get(self, kind: str, name: str | None = None, namespace: str | None = None,
            label_selector: str | None = None, all_namespaces: bool = False, page_size: int | None = None) -> Any:
        """One object (with `name`), else the list of all objects, following every page.

        Namespaced kinds list in the default namespace unless `all_namespaces`."""
        info = self.kind(kind)
        ns = None if all_namespaces and name is None else self._ns(info, namespace)
        if name is not None:
            return self._http.request("GET", info.path(ns, name))
        items: list[Manifest] = []
        cont = None
        while True:
            page = self._http.request("GET", info.path(ns), params={"labelSelector": label_selector,
                                                                     "limit": page_size, "continue": cont})
            items += page.get("items", [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items

    def create(self, manifest: Manifest, namespace: str | None = None) -> Manifest:
        """Create the object a manifest describes; raises AlreadyExists if it is there."""
        info, ns, _ = self._target(manifest, namespace)
        return self._http.request("POST", info.path(ns), json=manifest)

    def replace(self, manifest: Manifest, namespace: str | None = None) -> Manifest:
        """Replace metadata labels/annotations and spec; a stale metadata.resourceVersion raises Conflict."""
        info, ns, name = self._target(manifest, namespace)
        return self._http.request("PUT", info.path(ns, name), json=manifest)

    def patch(self, kind: str, name: str, patch: Manifest, namespace: str | None = None) -> Manifest:
        """Apply a JSON merge patch (RFC 7386) to an object's metadata and spec."""
        info = self.kind(kind)
        return self._http.request("PATCH", info.path(self._ns(info, namespace), name), json=patch)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> Manifest:
        """Delete an object; returns it as it was."""
        info = self.kind(kind)
        return self._http.request("DELETE", info.path(self._ns(info, namespace), name))

    @overload
    def apply(self, manifests: Manifest, namespace: str | None = None) -> Manifest: ...
    @overload
    def apply(self, manifests: Iterable[Manifest], namespace: str | None = None) -> list[Manifest]: ...

    def apply(self, manifests: Manifest | Iterable[Manifest], namespace: str | None = None) -> Any:
        """Create each object, or replace the spec, labels and annotations of one that exists."""
        if isinstance(manifests, dict):
            return self.apply_one(manifests, namespace)[0]
        return [self.apply_one(m, namespace)[0] for m in manifests]

    def apply_one(self, manifest: Manifest, namespace: str | None = None) -> tuple[Manifest, bool]:
        """Apply one manifest; returns (object, True if it was created)."""
        try:
            return self.create(manifest, namespace), True
        except AlreadyExists:
            pass
        body = copy.deepcopy(manifest)
        body.get("metadata", {}).pop("resourceVersion", None)
        body.pop("status", None)
        return self.replace(body, namespace), False

    def _target(self, manifest: Manifest, namespace: str | None) -> tuple[KindInfo, str | None, str | None]:
        if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str):
            raise Invalid("a manifest must be an object with a kind (and apiVersion, metadata, spec)")
        meta = manifest.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise Invalid("metadata must be an object")
        meta = meta or {}
        info = self.kind_of(manifest)
        ns = self._ns(info, namespace or meta.get("namespace"))
        return info, ns, meta.get("name")

    def events(self, kind: str, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The events recorded for one object, oldest first."""
        info = self.kind(kind)
        return self._http.request("GET", info.path(self._ns(info, namespace), name) + "/events").get("items", [])

    def logs(self, kind: str, name: str, follow: bool = False, tail: int | None = None,
             namespace: str | None = None) -> Iterator[str]:
        """The log of an object, line by line (newlines kept); with `follow`, until it ends."""
        info = self.kind(kind)
        path = info.path(self._ns(info, namespace), name) + "/log"
        with self._http.stream(path, params={"follow": follow or None, "tail": tail}) as response:
            yield from _lines(response.iter_text())

    def find_run(self, run: str, namespace: str | None = None) -> Manifest:
        """A pipeline Run by resource name or by its KFP run id (uid)."""
        try:
            return self.get("run", run, namespace)
        except NotFound:
            for obj in self.get("run", None, namespace):
                if obj["metadata"].get("uid") == run:
                    return obj
            raise

    def download(self, path: str, namespace: str | None = None) -> bytes:
        """An artifact's bytes, by its path in the namespace's artifact store (e.g. a task's `artifactPath`/output)."""
        ns = namespace or self.namespace
        with self._http.stream(f"/api/v1/namespaces/{ns}/artifacts/{path.lstrip('/')}") as response:
            return response.read()

    def task_logs(self, run: str, task: str, follow: bool = False, tail: int | None = None,
                  namespace: str | None = None) -> Iterator[str]:
        """The log of one task of a pipeline run (its key in `status.tasks`), line by line."""
        from urllib.parse import quote

        path = f"/api/v1/namespaces/{namespace or self.namespace}/runs/{quote(run, safe='')}/tasks/{quote(task, safe='')}/log"
        with self._http.stream(path, params={"follow": follow or None, "tail": tail}) as response:
            yield from _lines(response.iter_text())

    def lineage(self, artifact: str | None = None, run: str | None = None, direction: str = "both",
                depth: int = 10, namespace: str | None = None) -> dict[str, Any]:
        """`{nodes, edges}` around an artifact URI (upstream, downstream or both) or of a run."""
        params: dict[str, Any] = {"artifact": artifact, "run": run, "direction": direction, "depth": depth}
        return self._http.request("GET", f"/api/v1/namespaces/{namespace or self.namespace}/lineage",
                                  params={k: v for k, v in params.items() if v is not None})

    def wait(self, kind: str, name: str, phases: str | Iterable[str] = ("Succeeded", "Failed", "Ready"),
             timeout: float = 300.0, namespace: str | None = None, interval: float = 0.5) -> Manifest:
        """Poll until `status.phase` is one of `phases`; the object. Raises WaitTimeout."""
        wanted = {phases} if isinstance(phases, str) else set(phases)
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            obj = self.get(kind, name, namespace)
            phase = (obj.get("status") or {}).get("phase")
            if phase in wanted:
                return obj
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(f"{obj.get('kind', kind).lower()} '{name}' is still {phase or 'without a phase'} "
                                  f"after {timeout:g} s (waiting for {' or '.join(sorted(wanted))})")
            time.sleep(delay)
            delay = min(delay * 2, interval)

    # -- users, tokens, namespaces ---------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        """All users (administrators only)."""
        return self._http.request("GET", "/api/v1/users")["items"]

    def get_user(self, name: str) -> dict[str, Any]:
        return self._http.request("GET", f"/api/v1/users/{name}")

    def add_user(self, username: str, password: str, admin: bool = False, namespace: bool = True) -> dict[str, Any]:
        """Add a user; `namespace` also creates their own namespace, owned by them."""
        return self._http.request("POST", "/api/v1/users", json={"username": username, "password": password,
                                                                  "admin": admin, "namespace": namespace})

    def update_user(self, name: str, password: str | None = None, disabled: bool | None = None,
                    admin: bool | None = None) -> dict[str, Any]:
        """Change a password, disable/enable or promote/demote a user."""
        body = {k: v for k, v in (("password", password), ("disabled", disabled), ("admin", admin)) if v is not None}
        return self._http.request("PATCH", f"/api/v1/users/{name}", json=body)

    def tokens(self, all: bool = False) -> list[dict[str, Any]]:  # noqa: A002 - the API's word
        """The caller's API tokens (every user's for an admin with `all`)."""
        return self._http.request("GET", "/api/v1/tokens", params={"all": all or None})["items"]

    def create_token(self, name: str = "", namespace: str | None = None) -> dict[str, Any]:
        """A new API token; its secret (`"token"`) is in this answer only."""
        return self._http.request("POST", "/api/v1/tokens", json={"name": name, "namespace": namespace})

    def revoke_token(self, token_id: str) -> None:
        self._http.request("DELETE", f"/api/v1/tokens/{token_id}")

    def namespaces(self) -> list[dict[str, str]]:
        """The namespaces the caller may see, with their role."""
        return self._http.request("GET", "/api/v1/namespaces")["items"]

    def members(self, namespace: str) -> list[dict[str, Any]]:
        """Members of a namespace: `{"user", "role", "owner"}`."""
        return self._http.request("GET", f"/api/v1/namespaces/{namespace}/members")["items"]

    def set_member(self, namespace: str, user: str, role: str) -> dict[str, Any]:
        """Add a member or change their role (admin, edit or view)."""
        return self._http.request("PUT", f"/api/v1/namespaces/{namespace}/members/{user}", json={"role": role})

    def remove_member(self, namespace: str, user: str) -> None:
        self._http.request("DELETE", f"/api/v1/namespaces/{namespace}/members/{user}")


def _saved_login(url: str | None, needed: bool) -> config.Saved | None:
    """The saved login if it is for `url` (any, when None); a broken file only matters when `needed`."""
    try:
        saved = config.load()
    except Invalid:
        if needed:
            raise
        return None
    if saved is not None and url and url.rstrip("/") != saved.url.rstrip("/"):
        return None
    return saved


def login(url: str, username: str, password: str, verify: bool | str = True, name: str = "flowyard-cli",
          namespace: str | None = None) -> dict[str, Any]:
    """Exchange a user name and password for a new API token: `{"token", "id", ...}`."""
    http = Transport(url, None, verify)
    try:
        return http.request("POST", "/api/v1/auth/token", json={"username": username, "password": password,
                                                                 "name": name, "namespace": namespace})
    finally:
        http.close()


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    """Re-cut text chunks into lines, keeping newlines; a last partial line comes at the end."""
    rest = ""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split("\n")
        for line in lines:
            yield line + "\n"
    if rest:
        yield rest
