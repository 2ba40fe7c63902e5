"""A controller-started notebook used only through the gateway, as a user would: open the lab,
save a file, run code over the proxied WebSocket, stop, start, read the file back — while a
user of another namespace is refused at every step."""

from __future__ import annotations

import asyncio

import httpx
import websockets

from test_gateway import run_code
from test_notebooks import notebook, path, wait_phase

BASE = "/notebook/admin/gw/"


def _client(server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                        trust_env=False)


def _ws_refused(server, token: str, kernel: str) -> bool:
    async def attempt() -> bool:
        url = f"ws://127.0.0.1:{server.port}{BASE}api/kernels/{kernel}/channels?session_id=x"
        try:
            async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                          proxy=None) as conn:
                await asyncio.wait_for(conn.recv(), 5)
        except (websockets.InvalidStatus, websockets.ConnectionClosed):
            return True
        return False
    return asyncio.run(attempt())


def test_notebook_through_the_gateway_only(shared_server) -> None:
    srv = shared_server
    srv.add_user("dora")
    owner, outsider = srv.token(), srv.token("dora", "dora-password-1")
    with srv.client() as api:
        assert api.post("/api/v1/namespaces/admin/notebooks", json=notebook("gw")).status_code == 201
        assert wait_phase(api, path("gw"), {"Running", "Failed"})["status"]["phase"] == "Running"

    with _client(srv, owner) as me, _client(srv, outsider) as dora:
        lab = me.get(f"{BASE}lab", headers={"Accept": "text/html"})
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        assert dora.get(f"{BASE}lab").status_code == 403
        xsrf = {"X-XSRFToken": me.cookies["_xsrf"]}

        saved = me.put(f"{BASE}api/contents/note.txt", headers=xsrf,
                       json={"type": "file", "format": "text", "content": "persisted"})
        assert saved.status_code in (200, 201), saved.text
        assert dora.put(f"{BASE}api/contents/note.txt", json={"type": "file", "format": "text",
                                                               "content": "x"}).status_code == 403

        kernel = me.post(f"{BASE}api/kernels", headers=xsrf, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kid = kernel.json()["id"]
        out = asyncio.run(run_code(f"ws://127.0.0.1:{srv.port}{BASE}api/kernels/{kid}/channels",
                                   "print(open('note.txt').read(), 6 * 7)",
                                   headers={"Authorization": f"Bearer {owner}"}))
        assert out.strip() == "persisted 42"
        assert _ws_refused(srv, outsider, kid)
        assert dora.post(f"{BASE}api/kernels", json={"name": "python3"}).status_code == 403

    with srv.client() as api:
        api.patch(path("gw"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": "now"}}})
        wait_phase(api, path("gw"), {"Stopped"})
        with _client(srv, owner) as me:
            assert me.get(f"{BASE}api/status").status_code == 503
        api.patch(path("gw"), json={"metadata": {"annotations": {"kubeflow-resource-stopped": None}}})
        assert wait_phase(api, path("gw"), {"Running", "Failed"})["status"]["phase"] == "Running"

    with _client(srv, owner) as me, _client(srv, outsider) as dora:
        back = me.get(f"{BASE}api/contents/note.txt")
        assert back.status_code == 200 and back.json()["content"] == "persisted"
        assert dora.get(f"{BASE}api/contents/note.txt").status_code == 403
    with srv.client() as api:
        api.delete(path("gw"))
