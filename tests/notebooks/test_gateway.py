"""The notebook gateway: authentication, authorisation, header hygiene and forwarding.

The Flowyard app runs in-process (uvicorn in a thread, no lifespan, so no controller touches
the stand-in notebooks) and notebook status is written with `p.store.set_status`, as the
controller would. A throwaway upstream checks the proxy secret like the notebook's identity
provider does. `test_jupyterlab_end_to_end` runs a real JupyterLab behind the gateway;
its helpers (`jupyter_lab`, `run_code`) are meant for reuse by other notebook tests
(`from test_gateway import jupyter_lab, run_code`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from flowyard import kinds
from flowyard.api.deps import SESSION_COOKIE, sign_session
from flowyard.config import Settings
from flowyard.errors import NotFound
from flowyard.kinds import Kind
from flowyard.namespaces import PROFILE
from flowyard.notebooks import gateway
from flowyard.notebooks.secret import HEADER, USER_HEADER, proxy_secret
from flowyard.platform import Platform
from flowyard.server.app import create_app
from fyserver import _drop_pg_database, _pg_database, free_port, require, serve_app

SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
NS = "team"


serve = serve_app


def notebook_kind() -> Kind:
    """The Notebook kind: the real one if its module exists, else a minimal stand-in."""
    with contextlib.suppress(ImportError):
        import flowyard.notebooks.kind  # noqa: F401
    try:
        return kinds.lookup("Notebook")
    except NotFound:
        return kinds.register(Kind("Notebook", ("kubeflow.org/v1",)))


def add_notebook(p: Platform, ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """A Notebook object with `status`, stored as is (spec validation bypassed: these are stand-ins)."""
    kind = dataclasses.replace(notebook_kind(), spec_from=lambda m, _old: m.get("spec") or {})
    return p.store.create(kind, ns, {"metadata": {"name": name}, "spec": {}}, status=status)


# -- the throwaway upstream: checks the secret like the notebook's identity provider -----------


class Upstream:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.seen: list[dict[str, str]] = []

    def allowed(self, headers: Any) -> bool:
        return headers.get(HEADER) in self.secrets and bool(headers.get(USER_HEADER))

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            headers = dict(request.headers)
            self.seen.append(headers)
            if not self.allowed(request.headers):
                return JSONResponse({"error": "bad secret"}, status_code=403)
            body = await request.body()
            return JSONResponse({"path": request.scope["raw_path"].decode(), "query": request.url.query,
                                 "method": request.method, "headers": headers, "body": body.decode()})

        async def ws(websocket: WebSocket) -> None:
            if not self.allowed(websocket.headers):
                await websocket.close(1008)
                return
            offered = websocket.scope.get("subprotocols") or []
            await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
            await websocket.send_text(json.dumps(dict(websocket.headers)))
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await websocket.send_text(message.get("text") or "")

        return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
                                 WebSocketRoute("/{path:path}", ws)])


@dataclasses.dataclass
class World:
    p: Platform
    base: str  # host:port of the Flowyard app
    upstream: Upstream
    cookies: dict[str, str]  # user → signed session cookie
    tokens: dict[str, str]  # user → bearer token
    csrf: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.base}"

    def client(self, user: str | None = None, how: str = "token") -> httpx.Client:
        headers, cookies = {}, {}
        if user and how == "token":
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        elif user:
            cookies[SESSION_COOKIE] = self.cookies[user]
        return httpx.Client(base_url=self.url, headers=headers, cookies=cookies, timeout=30, trust_env=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[World]:
    db = _pg_database() if request.config.getoption("--db") == "postgresql" else None
    try:
        yield from _world(tmp_path_factory.mktemp("gw") / "home", db)
    finally:
        if db:
            _drop_pg_database(db)


def _world(home: Path, db: str | None) -> Iterator[World]:
    p = Platform.open(Settings(home=home, db=db))
    cookies, tokens, csrf = {}, {}, {}
    for user in ("owner", "editor", "viewer", "outsider"):
        p.accounts.add_user(user, f"{user}-password-1")
        sid, csrf[user] = p.accounts.create_session(user)
        cookies[user] = sign_session(p, sid)
        tokens[user] = p.accounts.create_token(user, "t")["token"]
    p.store.create(PROFILE, "", {"metadata": {"name": NS}, "spec": {"owner": {"kind": "User", "name": "owner"}}})
    p.namespaces.set_member(NS, "owner", "admin")
    p.namespaces.set_member(NS, "editor", "edit")
    p.namespaces.set_member(NS, "viewer", "view")
    p.store.create(PROFILE, "", {"metadata": {"name": "other"},
                                 "spec": {"owner": {"kind": "User", "name": "outsider"}}})
    p.namespaces.set_member("other", "outsider", "admin")
    up = Upstream()
    with serve(up.app()) as upstream_address, serve(create_app(p)) as base:
        nb = add_notebook(p, NS, "nb", {"phase": "Running", "endpoint": upstream_address})
        up.secrets.add(proxy_secret(p.session_key, nb["metadata"]["uid"]))
        add_notebook(p, NS, "stopped", {"phase": "Stopped"})
        add_notebook(p, NS, "starting", {"phase": "Starting", "endpoint": upstream_address})
        add_notebook(p, NS, "gone", {"phase": "Running", "endpoint": f"127.0.0.1:{free_port()}"})
        # running, but its secret is not the one the upstream knows: proves the uid is in the secret
        add_notebook(p, NS, "other-uid", {"phase": "Running", "endpoint": upstream_address})
        yield World(p, base, up, cookies, tokens, csrf)


NB = f"/notebook/{NS}/nb"


# -- HTTP -----------------------------------------------------------------------------------------


def test_owner_with_cookie_reaches_notebook_without_platform_credentials(world: World) -> None:
    with world.client("owner", how="cookie") as c:
        r = c.get(f"{NB}/api/contents/a%20b.ipynb", params={"content": "1"},
                  headers={"Cookie": f"{SESSION_COOKIE}={world.cookies['owner']}; _xsrf=x1; other=2",
                           "X-CSRF-Token": world.csrf["owner"], USER_HEADER: "admin", HEADER: "forged"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["path"] == f"{NB}/api/contents/a%20b.ipynb" and seen["query"] == "content=1"
    h = seen["headers"]
    assert h[USER_HEADER.lower()] == "owner"
    assert h[HEADER.lower()] in world.upstream.secrets
    assert h["cookie"] == "_xsrf=x1; other=2"
    assert "authorization" not in h and "x-csrf-token" not in h
    assert h["host"] == world.base
    assert gateway.last_activity(world.p, NS, "nb") is not None


def test_editor_with_token_and_post(world: World) -> None:
    with world.client("editor") as c:
        r = c.post(f"{NB}/api/kernels", json={"name": "python3"}, headers={USER_HEADER: "owner"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"name": "python3"}
    assert seen["headers"][USER_HEADER.lower()] == "editor"
    assert "authorization" not in seen["headers"]


def test_cookie_post_needs_same_origin_but_not_our_csrf_header(world: World) -> None:
    with world.client("owner", how="cookie") as c:
        ok = c.post(f"{NB}/api/kernels", headers={"Origin": world.url})
        foreign = c.post(f"{NB}/api/kernels", headers={"Origin": "http://evil.example"})
    assert ok.status_code == 200, ok.text
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["message"]


def test_viewer_and_outsider_are_refused(world: World) -> None:
    with world.client("viewer") as c:
        r = c.get(f"{NB}/lab")
    assert r.status_code == 403
    assert "viewers cannot execute code in notebooks" in r.json()["message"]
    with world.client("outsider", how="cookie") as c:
        r = c.get(f"{NB}/lab")
    assert r.status_code == 403 and "not a member" in r.json()["message"]
    # a token limited to another namespace
    limited = world.p.accounts.create_token("owner", "lim", namespace="team")["token"]
    other = world.p.accounts.create_token("outsider", "lim", namespace="other")["token"]
    with httpx.Client(base_url=world.url, trust_env=False) as c:
        assert c.get(f"{NB}/api/x", headers={"Authorization": f"Bearer {limited}"}).status_code == 200
        assert c.get(f"{NB}/api/x", headers={"Authorization": f"Bearer {other}"}).status_code == 403


def test_anonymous_browser_is_sent_to_login_and_programs_get_401(world: World) -> None:
    with world.client() as c:
        r = c.get(f"{NB}/lab/tree", params={"a": "1"}, headers={"Accept": "text/html,application/xhtml+xml"})
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fnotebook%2Fteam%2Fnb%2Flab%2Ftree%3Fa%3D1"
        r = c.get(f"{NB}/api/status")
        assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
        assert c.post(f"{NB}/api/kernels", headers={"Accept": "text/html"}).status_code == 401
        assert c.get(f"{NB}/api/status", headers={"Authorization": "Bearer fy_nope_nope"}).status_code == 401
    with httpx.Client(base_url=world.url, cookies={SESSION_COOKIE: "garbage"}, trust_env=False) as c:
        assert c.get(f"{NB}/lab", headers={"Accept": "text/html"}).status_code == 303
    assert all(s.get(USER_HEADER.lower()) for s in world.upstream.seen)  # nothing anonymous got through


def test_not_running_missing_and_unreachable(world: World) -> None:
    with world.client("owner") as c:
        r = c.get(f"/notebook/{NS}/stopped/lab")
        assert r.status_code == 503
        assert r.json() == {"code": "Unavailable", "status": 503,
                            "message": "notebook 'stopped' is not running (phase Stopped): start it first"}
        r = c.get(f"/notebook/{NS}/starting/lab")
        assert r.status_code == 503 and r.headers["retry-after"] == "2" and "starting" in r.json()["message"]
        r = c.get(f"/notebook/{NS}/missing/lab")
        assert r.status_code == 404
        r = c.get(f"/notebook/{NS}/gone/lab")
        assert r.status_code == 502 and r.json()["message"] == "notebook 'gone' is not answering (is it running?)"
        r = c.get(f"/notebook/{NS}/other-uid/lab")
        assert r.status_code == 403  # the upstream refused a secret made for another notebook
    with world.client("outsider") as c:  # no probing of other namespaces' notebooks
        assert c.get(f"/notebook/{NS}/missing/lab").status_code == 403


def test_bare_notebook_path_redirects_to_slash(world: World) -> None:
    with world.client("owner") as c:
        r = c.get(NB, params={"x": "1"})
    assert r.status_code == 307 and r.headers["location"] == f"{NB}/?x=1"


def test_gateway_is_not_in_the_api_schema(world: World) -> None:
    with world.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert not any(path.startswith("/notebook") for path in paths)


# -- WebSockets -------------------------------------------------------------------------------------


def ws(world: World, path: str, **kwargs: Any) -> Any:
    return websockets.connect(f"ws://{world.base}{path}", proxy=None, **kwargs)


def test_websocket_with_cookie_and_subprotocol(world: World) -> None:
    async def go() -> None:
        async with ws(world, f"{NB}/api/kernels/k1/channels?session_id=s1", subprotocols=[SUBPROTOCOL],
                      origin=world.url,
                      additional_headers={"Cookie": f"{SESSION_COOKIE}={world.cookies['editor']}; _xsrf=z"}) as conn:
            assert conn.subprotocol == SUBPROTOCOL
            seen = json.loads(await conn.recv())
            assert seen[USER_HEADER.lower()] == "editor"
            assert seen[HEADER.lower()] in world.upstream.secrets
            assert seen["cookie"] == "_xsrf=z"
            assert seen["host"] == world.base and seen["origin"] == world.url
            await conn.send("ping")
            assert await conn.recv() == "ping"

    asyncio.run(asyncio.wait_for(go(), 30))


def test_websocket_with_bearer_token(world: World) -> None:
    async def go() -> None:
        async with ws(world, f"{NB}/terminals/websocket/1",
                      additional_headers={"Authorization": f"Bearer {world.tokens['owner']}"}) as conn:
            seen = json.loads(await conn.recv())
            assert seen[USER_HEADER.lower()] == "owner" and "authorization" not in seen

    asyncio.run(asyncio.wait_for(go(), 30))


def refused(world: World, path: str, **kwargs: Any) -> int:
    async def go() -> int:
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with ws(world, path, **kwargs):
                pass
        return caught.value.response.status_code

    return asyncio.run(asyncio.wait_for(go(), 30))


def test_websocket_refusals(world: World) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={world.cookies['owner']}"}
    # cross-site WebSocket hijacking: the browser sends the cookie from any page
    assert refused(world, f"{NB}/api/events/subscribe", origin="http://evil.example", additional_headers=cookie) == 403
    assert refused(world, f"{NB}/api/events/subscribe", additional_headers=cookie) == 403  # no Origin at all
    assert refused(world, f"{NB}/api/events/subscribe") == 403  # anonymous
    assert refused(world, f"{NB}/api/events/subscribe", origin=world.url,
                   additional_headers={"Cookie": f"{SESSION_COOKIE}={world.cookies['viewer']}"}) == 403
    assert refused(world, f"/notebook/{NS}/stopped/api/events/subscribe", origin=world.url,
                   additional_headers=cookie) == 403  # not running


# -- a real JupyterLab behind the gateway ----------------------------------------------------------


@contextlib.contextmanager
def jupyter_lab(root: Path, base_url: str, *, secret: str | None = None, token: str | None = None,
                port: int | None = None, timeout: float = 90) -> Iterator[str]:
    """A real `jupyter lab` on a free loopback port serving `base_url`; yields '127.0.0.1:PORT'.

    With `secret`, it runs with Flowyard's identity provider (as the controller starts it);
    with `token`, with plain token auth (`Authorization: token <token>`).
    """
    require(subprocess.run([sys.executable, "-c", "import jupyterlab, ipykernel"], capture_output=True).returncode == 0,
            "jupyterlab and ipykernel")
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTER_DATA_DIR": str(root / ".data"), "IPYTHONDIR": str(root / ".ipython"), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.base_url={base_url}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            "--ServerApp.allow_remote_access=True", "--allow-root", f"--ServerApp.root_dir={root}"]
    headers = {}
    if secret is not None:
        env["FLOWYARD_PROXY_SECRET"] = secret
        args.append("--ServerApp.identity_provider_class=flowyard.notebooks.jupyter_auth.FlowyardIdentityProvider")
        headers = {"Authorization": f"token {secret}"}
    else:
        args.append(f"--IdentityProvider.token={token or 'test-token'}")
        headers = {"Authorization": f"token {token or 'test-token'}"}
    log = open(root / "jupyter.log", "wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(root / 'jupyter.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"http://127.0.0.1:{port}{base_url}api/status", headers=headers, timeout=2,
                              trust_env=False)
                if r.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab not ready in {timeout}s: {(root / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def run_code(ws_url: str, code: str, *, headers: dict[str, str] | None = None, origin: str | None = None,
                   timeout: float = 60) -> str:
    """Run `code` in a kernel over its channels WebSocket (JSON protocol, no subprotocol); its stdout."""
    session, msg_id = uuid.uuid4().hex, uuid.uuid4().hex
    message = {
        "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                   "version": "5.3", "date": datetime.datetime.now(datetime.UTC).isoformat()},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }
    out: list[str] = []
    sep = "&" if "?" in ws_url else "?"
    async with websockets.connect(f"{ws_url}{sep}session_id={session}", additional_headers=headers or {},
                                  origin=origin, proxy=None, max_size=None) as conn:  # type: ignore[arg-type]
        await conn.send(json.dumps(message))
        async with asyncio.timeout(timeout):
            while True:
                reply = json.loads(await conn.recv())
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = reply["header"]["msg_type"]
                if kind == "stream":
                    out.append(reply["content"]["text"])
                elif kind == "error":
                    raise AssertionError(f"the kernel failed: {reply['content']}")
                elif kind == "status" and reply["content"]["execution_state"] == "idle":
                    return "".join(out)


def test_jupyterlab_end_to_end(world: World, tmp_path: Path) -> None:
    """Browser-like: session cookie, Jupyter's XSRF cookie and Origin, a kernel run over the proxied WebSocket."""
    p = world.p
    name = "lab"
    obj = add_notebook(p, NS, name, {"phase": "Pending"})
    base_url = gateway.base_url(NS, name)
    secret = proxy_secret(p.session_key, obj["metadata"]["uid"])
    started = time.perf_counter()
    with jupyter_lab(tmp_path / "nb", base_url, secret=secret) as endpoint:
        ready = time.perf_counter() - started
        kind = notebook_kind()
        p.store.set_status(kind, NS, name, {"phase": "Running", "endpoint": endpoint})
        cookies = {SESSION_COOKIE: world.cookies["editor"]}
        with httpx.Client(base_url=world.url, cookies=cookies, timeout=30, trust_env=False) as c:
            r = c.get(f"{base_url}lab", headers={"Accept": "text/html"})
            assert r.status_code == 200 and "JupyterLab" in r.text, r.text[:500]
            xsrf = c.cookies.get("_xsrf")
            assert xsrf, "Jupyter sets its XSRF cookie on /lab"
            me = c.get(f"{base_url}api/me").json()
            assert me["identity"]["username"] == "editor"
            assert c.post(f"{base_url}api/kernels", json={"name": "python3"}).status_code == 403  # XSRF stays on
            r = c.post(f"{base_url}api/kernels", json={"name": "python3"},
                       headers={"X-XSRFToken": xsrf, "Origin": world.url})
            assert r.status_code == 201, r.text
            kernel = r.json()["id"]
            cookie_header = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
            t0 = time.perf_counter()
            output = asyncio.run(run_code(f"ws://{world.base}{base_url}api/kernels/{kernel}/channels",
                                          "print(6 * 7)", headers={"Cookie": cookie_header}, origin=world.url))
            first_run = time.perf_counter() - t0
            assert output.strip() == "42"
            assert c.delete(f"{base_url}api/kernels/{kernel}",
                            headers={"X-XSRFToken": xsrf, "Origin": world.url}).status_code == 204
        with httpx.Client(base_url=world.url, timeout=30, trust_env=False,
                          cookies={SESSION_COOKIE: world.cookies["viewer"]}) as c:
            assert c.get(f"{base_url}api/status").status_code == 403
        # the loopback port alone is useless: Jupyter wants the secret
        assert httpx.get(f"http://{endpoint}{base_url}api/status", trust_env=False).status_code == 403
    print(f"jupyter ready in {ready:.1f}s; first execute (kernel start included) {first_run:.2f}s")
