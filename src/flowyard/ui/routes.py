"""The web dashboard: login and logout, the shell (top bar, namespace switcher, side nav) and its pages.

Pages are rendered on the server with Jinja2; the little JavaScript in `static/app.js` calls the
JSON API with the session cookie and the session's CSRF token in the `X-CSRF-Token` header.

To add a page: append one `NavItem` to `NAV`, add a route that calls `shell(request, "<key>")`
and `render(...)`, and a template that extends `base.html`.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from flowyard import __version__, quantity
from flowyard.accounts import SESSION_SECONDS, Principal
from flowyard.api.deps import CSRF_HEADER, SESSION_COOKIE, session_id, sign_session
from flowyard.errors import FlowyardError, NotFound, Unauthorized
from flowyard.kinds import Kind, all_kinds, lookup
from flowyard.namespaces import PROFILE, ROLES
from flowyard.platform import Platform

HERE = Path(__file__).resolve().parent
NS_COOKIE = "flowyard_ns"
LOGIN_CSRF_COOKIE = "flowyard_login_csrf"
PRODUCT = "Flowyard"
EVENTS_SHOWN = 15

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(product=PRODUCT, version=__version__)


@dataclass(frozen=True)
class NavItem:
    """One entry of the left navigation: its key (the `active` name of a page), label, path and icon."""

    key: str
    label: str
    path: str
    icon: str
    """The id of an SVG symbol in base.html (`i-<icon>`)."""


NAV: list[NavItem] = [
    NavItem("home", "Home", "/", "home"),
    NavItem("notebooks", "Notebooks", "/notebooks", "notebook"),
    NavItem("pipelines", "Pipelines", "/pipelines", "layers"),
    NavItem("runs", "Runs", "/runs", "run"),
    NavItem("tracking", "Experiments & models", "/tracking", "chart"),
    NavItem("tuning", "Tuning", "/tuning", "sliders"),
    NavItem("endpoints", "Endpoints", "/endpoints", "plug"),
    NavItem("members", "Members", "/members", "users"),
]

# Sent with every HTML page: no framing, no inline script, nothing cached.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """Raised by `shell()` when the browser has no valid session; answered with a redirect to /login."""


@dataclass
class Shell:
    """What every page of the shell needs: who is looking, at which namespace, with which role."""

    request: Request
    who: Principal
    active: str
    namespaces: list[dict[str, str]]
    namespace: str | None
    role: str | None
    notice: str | None = None
    remember: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        return _platform(self.request)

    def can(self, role: str) -> bool:
        """Whether the user holds at least `role` in the current namespace."""
        return self.role is not None and ROLES[self.role] >= ROLES[role]

    def link(self, path: str) -> str:
        """`path` with the current namespace in the query, so links can be shared."""
        return f"{path}?{urlencode({'ns': self.namespace})}" if self.namespace else path


def _platform(request: Request) -> Platform:
    return request.app.state.platform


def _session(request: Request) -> tuple[Principal, str] | None:
    """(principal, session id) of the browser's session cookie, or None if it has no valid one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    p = _platform(request)
    sid = session_id(p, cookie)
    if sid is None:
        return None
    try:
        return p.accounts.authenticate_session(sid), sid
    except Unauthorized:
        return None


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "/" (no open redirects)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or c == "\x7f" for c in target)):
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def shell(request: Request, active: str) -> Shell:
    """The shell context of a page; raises `LoginRequired` without a valid session."""
    found = _session(request)
    if found is None:
        raise LoginRequired()
    who = found[0]
    p = _platform(request)
    namespaces = p.namespaces.visible(who)
    names = [n["name"] for n in namespaces]
    asked = request.query_params.get("ns")
    notice = None
    remember = False
    if asked and asked in names:
        current: str | None = asked
        remember = asked != request.cookies.get(NS_COOKIE)
    else:
        remembered = request.cookies.get(NS_COOKIE)
        if remembered in names:
            current = remembered
        elif who.user in names:
            current = who.user
        else:
            current = names[0] if names else None
        if asked:
            notice = (f"Namespace '{asked}' does not exist or you are not a member of it"
                      + (f"; showing '{current}' instead." if current else "."))
    role = None
    if current is not None:
        try:
            role = p.namespaces.require(who, current, "view")
        except FlowyardError:  # removed between the two reads
            current, role = None, None
    return Shell(request, who, active, namespaces, current, role, notice, remember)


def render(sh: Shell, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page of the shell (a template extending base.html)."""
    response = templates.TemplateResponse(
        sh.request, template, {"sh": sh, "nav": NAV, "csrf_header": CSRF_HEADER, **context},
        status_code=status_code, headers=_PAGE_HEADERS,
    )
    if sh.remember and sh.namespace:
        response.set_cookie(NS_COOKIE, sh.namespace, max_age=365 * 86400, path="/", httponly=True,
                            samesite="lax", secure=_secure(sh.request))
    return response


# -- login and logout ------------------------------------------------------------------------


def _login_page(request: Request, *, next_: str, error: str | None = None, status_code: int = 200,
                username: str = "", headers: dict[str, str] | None = None, rotate: bool = False) -> HTMLResponse:
    """The login form, with a double-submit CSRF token (a cookie and the same value in a hidden field)."""
    token = "" if rotate else request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    fresh = len(token) < 20
    if fresh:
        token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "login.html",
        {"csrf": token, "next": next_, "error": error, "username": username},
        status_code=status_code, headers={**_PAGE_HEADERS, **(headers or {})},
    )
    if fresh:
        response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True,
                            samesite="lax", secure=_secure(request))
    return response


def login_form(request: Request) -> Response:
    next_ = safe_next(request.query_params.get("next"))
    if _session(request) is not None:
        return RedirectResponse(next_, status_code=303)
    return _login_page(request, next_=next_)


async def login(request: Request) -> Response:
    form = await request.form()

    def field_(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    username, password = field_("username", 64).strip(), field_("password", 1024)
    next_ = safe_next(field_("next", 2048))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    form_token = field_("csrf", 128)
    if not cookie_token or not form_token or not hmac.compare_digest(cookie_token, form_token):
        return _login_page(request, next_=next_, username=username, status_code=403, rotate=True,
                           error="This login form has expired or was not sent by this site. Please try again.")
    if not username or not password:
        return _login_page(request, next_=next_, username=username, status_code=400,
                           error="Enter your user name and password.")
    p = _platform(request)
    try:
        who = await run_in_threadpool(p.accounts.verify_password, username, password,
                                      request.client.host if request.client else "")
    except FlowyardError as e:
        headers = {"Retry-After": str(e.details["retry_after"])} if "retry_after" in e.details else None
        status = e.status if e.status in (401, 429) else 401
        message = e.message[:1].upper() + e.message[1:]
        return _login_page(request, next_=next_, username=username, status_code=status, error=message + ".",
                           headers=headers)
    sid, _ = await run_in_threadpool(p.accounts.create_session, who.user)
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(SESSION_COOKIE, sign_session(p, sid), max_age=SESSION_SECONDS, path="/", httponly=True,
                        samesite="lax", secure=_secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    found = await run_in_threadpool(_session, request)
    if found is not None:
        who, sid = found
        form = await request.form()
        token = form.get("csrf")
        if not isinstance(token, str) or not who.csrf or not hmac.compare_digest(token, who.csrf):
            return HTMLResponse("<!doctype html><title>Forbidden</title><p>This logout request was not sent by "
                                "this site's page: use the Log out button.</p>", status_code=403,
                                headers=_PAGE_HEADERS)
        await run_in_threadpool(_platform(request).accounts.end_session, sid)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response


# -- pages -----------------------------------------------------------------------------------


def _quota(p: Platform, namespace: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(owner, quota rows) of a namespace; each row: name, limit text, and usage when known."""
    try:
        spec = p.store.get(PROFILE, "", namespace)["spec"]
    except NotFound:
        return None, []
    owner = (spec.get("owner") or {}).get("name")
    hard = (spec.get("resourceQuotaSpec") or {}).get("hard") or {}
    used = None
    usage = getattr(p.executor, "usage", None)  # optional: Resources of the namespace's running workloads
    if callable(usage):
        try:
            used = usage(namespace)
        except Exception:
            used = None
    rows = []
    for key, value in sorted(hard.items()):
        row: dict[str, Any] = {"name": key, "limit": str(value)}
        try:
            if used is not None and "cpu" in key:
                row.update(used=quantity.format_cpu(used.cpu), value=used.cpu, max=quantity.parse_cpu(value))
            elif used is not None and "memory" in key:
                row.update(used=quantity.format_memory(used.memory), value=used.memory,
                           max=quantity.parse_memory(value))
            elif used is not None and "gpu" in key:
                row.update(used=str(used.gpu), value=used.gpu, max=int(str(value)))
        except (ValueError, AttributeError):
            pass
        rows.append(row)
    return owner, rows


def kind_label(name: str) -> str:
    """A kind's name as readable plural words: "InferenceService" -> "Inference services"."""
    words = re.findall(r"[A-Z][a-z0-9]*", name) or [name]
    last = words[-1].lower()
    if last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join([*words[:-1], last]).capitalize()


def home(request: Request) -> Response:
    sh = shell(request, "home")
    if sh.namespace is None:
        return render(sh, "home.html")
    p = sh.platform
    owner, quota = _quota(p, sh.namespace)
    kinds = [k for k in all_kinds() if k.namespaced and sh.can(k.min_read_role)]
    counts = [{"kind": k.name, "plural": k.plural, "label": kind_label(k.name),
               "count": p.store.count(k, sh.namespace)} for k in kinds]
    workloads = None
    if p.executor is not None:
        phases = [str(s.phase) for s in p.executor.list(sh.namespace)]
        workloads = {"running": phases.count("Running"), "pending": phases.count("Pending")}
    events = list(reversed(p.store.list_events(sh.namespace, limit=EVENTS_SHOWN)))
    return render(sh, "home.html", owner=owner, quota=quota, quota_usage=any("used" in q for q in quota),
                  counts=counts, workloads=workloads, events=events)


def members_page(request: Request) -> Response:
    sh = shell(request, "members")
    if sh.namespace is None:
        return render(sh, "members.html")
    p = sh.platform
    owner, _ = _quota(p, sh.namespace)
    rows = [{**m, "owner": m["user"] == owner} for m in p.namespaces.members(sh.namespace)]
    return render(sh, "members.html", owner=owner, members=rows, roles=list(ROLES)[::-1],
                  editable=sh.can("admin"))


# -- notebooks -------------------------------------------------------------------------------

STOP_ANNOTATION = "kubeflow-resource-stopped"
"""Present on a Notebook that should be stopped (Kubeflow's convention); its value is when it was asked."""
GPU_RESOURCE = "nvidia.com/gpu"
WORKSPACE_MOUNT = "/home/jovyan"
"""Where the workspace volume is mounted, as in Kubeflow's notebook images."""
NOTEBOOK_NAME_MAX = 52
"""So that `<name>-workspace` is still a valid volume name (63 characters at most)."""


def _kind_or_none(name: str) -> Kind | None:
    """The registered kind called `name`, or None while its feature is not installed."""
    try:
        return lookup(name)
    except NotFound:
        return None


def notebook_row(obj: dict[str, Any]) -> dict[str, Any]:
    """What the notebooks table shows of one Notebook manifest (app.js `notebookRow` mirrors this)."""
    meta = obj.get("metadata") or {}
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or [{}]
    container = containers[0] if isinstance(containers[0], dict) else {}
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}

    def amount(key: str) -> str | None:
        value = limits.get(key, requests.get(key))
        return None if value is None or value == "" else str(value)

    status = obj.get("status") or {}
    stopped = STOP_ANNOTATION in (meta.get("annotations") or {})
    phase = str(status.get("phase") or "Pending")
    ready = next((c for c in status.get("conditions") or []
                  if isinstance(c, dict) and c.get("type") == "Ready"), None)
    shown = phase
    if stopped and phase not in ("Stopped", "Failed"):
        shown = "Stopping"
    elif not stopped and phase == "Stopped":
        shown = "Starting"
    url = status.get("url") or ""
    volumes = {v.get("name"): v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes") or []
               if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)
               and v["persistentVolumeClaim"].get("claimName")}
    workspace = next((volumes.get(m.get("name")) for m in container.get("volumeMounts") or []
                      if isinstance(m, dict) and str(m.get("mountPath", "")).rstrip("/") == WORKSPACE_MOUNT), None)
    return {
        "name": meta.get("name", ""),
        "environment": container.get("image") or "default",
        "cpu": amount("cpu"), "memory": amount("memory"), "gpu": amount(GPU_RESOURCE),
        "phase": shown,
        "message": status.get("message") or "",
        "ready": None if ready is None or shown == "Stopped" else ready.get("status") == "True",
        "ready_reason": "" if ready is None else (ready.get("message") or ready.get("reason") or ""),
        "last_activity": status.get("lastActivity") or "",
        "stopped": stopped,
        "connect": (url if url.endswith("/") else url + "/") + "lab" if url and phase == "Running" and not stopped
        else None,
        "workspace": workspace or "",
        "claims": list(volumes.values()),
    }


def notebooks_page(request: Request) -> Response:
    sh = shell(request, "notebooks")
    if sh.namespace is None:
        return render(sh, "notebooks.html")
    kind = _kind_or_none("Notebook")
    rows: list[dict[str, Any]] = []
    if kind is not None:
        items, _ = sh.platform.store.list(kind, sh.namespace)
        rows = [notebook_row(kind.present(i)) for i in items]
    return render(sh, "notebooks.html", available=kind is not None, rows=rows, editable=sh.can("edit"))


def _environments(p: Platform) -> list[dict[str, str]]:
    """Ready environments, `default` first (it is the platform's own interpreter and always usable)."""
    kind = _kind_or_none("Environment")
    items = p.store.list(kind, None)[0] if kind is not None else []
    envs = []
    for e in items:
        name = e["metadata"]["name"]
        if name != "default" and (e.get("status") or {}).get("phase") != "Ready":
            continue
        reqs = (e.get("spec") or {}).get("requirements") or []
        envs.append({"name": name, "description": "the platform's own Python" if name == "default" else
                     f"{len(reqs)} package{'' if len(reqs) == 1 else 's'}"})
    if not any(e["name"] == "default" for e in envs):
        envs.append({"name": "default", "description": "the platform's own Python"})
    return sorted(envs, key=lambda e: (e["name"] != "default", e["name"]))


def _claims(p: Platform, namespace: str) -> list[dict[str, str]] | None:
    """The namespace's PersistentVolumeClaims (name and size), or None if the kind is not installed."""
    kind = _kind_or_none("PersistentVolumeClaim")
    if kind is None:
        return None
    out = []
    for c in p.store.list(kind, namespace)[0]:
        size = (((c.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
        out.append({"name": c["metadata"]["name"], "size": str(size) if size else ""})
    return out


def notebook_new_page(request: Request) -> Response:
    sh = shell(request, "notebooks")
    if sh.namespace is None:
        return render(sh, "notebooks_new.html")
    if not sh.can("edit"):
        return render(sh, "notebooks_new.html", status_code=403, forbidden=True)
    p = sh.platform
    capacity = getattr(p.executor, "capacity", None)
    gpus = int(getattr(capacity, "gpu", 0) or 0) if capacity is not None else 0
    hint = None
    if capacity is not None:
        try:
            hint = (f"This server has {quantity.format_cpu(capacity.cpu)} CPU cores, "
                    f"{capacity.memory / 2**30:.0f} GiB of memory and "
                    f"{gpus or 'no'} GPU{'' if gpus == 1 else 's'}.")
        except (AttributeError, TypeError, ValueError):
            hint = None
    return render(sh, "notebooks_new.html", available=_kind_or_none("Notebook") is not None,
                  environments=_environments(p), claims=_claims(p, sh.namespace), max_gpus=gpus,
                  capacity_hint=hint, name_max=NOTEBOOK_NAME_MAX, workspace_mount=WORKSPACE_MOUNT)


def install(app: FastAPI) -> None:
    """Mount the static files and add the dashboard's pages to `app`."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.add_api_route("/login", login_form, methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", login, methods=["POST"], include_in_schema=False)
    app.add_api_route("/logout", logout, methods=["POST"], include_in_schema=False)
    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    app.add_api_route("/notebooks", notebooks_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/notebooks/new", notebook_new_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/members", members_page, methods=["GET"], include_in_schema=False)
    from flowyard.ui import pipelines

    pipelines.install(app)
    from flowyard.ui import tracking

    tracking.install(app)
    from flowyard.ui import tuning

    tuning.install(app)
