"""Talking to a notebook server the way the gateway does: secret header, XSRF, kernel WebSocket."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from flowyard.notebooks.secret import HEADER, USER_HEADER, proxy_secret


def secret_for(home: Path, uid: str) -> str:
    """The proxy secret of notebook `uid` on a server with home folder `home`."""
    return proxy_secret((home / "session.key").read_bytes().strip(), uid)


class Jupyter:
    """A client of one notebook server at its executor endpoint, as user `user`."""

    def __init__(self, endpoint: str, base: str, secret: str, user: str = "admin") -> None:
        self.endpoint, self.base = endpoint, base
        self.headers = {HEADER: secret, USER_HEADER: user}
        self.http = httpx.Client(base_url=f"http://{endpoint}{base}", headers=self.headers, trust_env=False,
                                 timeout=30)
        r = self.http.get("lab")  # sets the _xsrf cookie, as for a browser
        r.raise_for_status()
        self.http.headers["X-XSRFToken"] = self.http.cookies.get("_xsrf", "")

    def close(self) -> None:
        self.http.close()

    def put_text(self, path: str, text: str) -> httpx.Response:
        return self.http.put(f"api/contents/{path}", json={"type": "file", "format": "text", "content": text})

    def get_text(self, path: str) -> str:
        r = self.http.get(f"api/contents/{path}", params={"content": 1})
        r.raise_for_status()
        return r.json()["content"]

    def start_kernel(self) -> str:
        r = self.http.post("api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def execute(self, kernel: str, code: str, timeout: float = 60) -> dict[str, Any]:
        """Run `code` in the kernel; {status, stdout, ename}."""
        from websockets.sync.client import connect

        session = uuid.uuid4().hex
        url = f"ws://{self.endpoint}{self.base}api/kernels/{kernel}/channels?session_id={session}"
        msg_id = uuid.uuid4().hex
        request = {
            "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                       "version": "5.3", "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }
        out: dict[str, Any] = {"status": None, "stdout": "", "ename": None}
        idle = False
        with connect(url, additional_headers=self.headers, open_timeout=timeout, max_size=None) as ws:
            ws.send(json.dumps(request))
            while True:
                msg = json.loads(ws.recv(timeout=timeout))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out["stdout"] += msg["content"].get("text", "")
                elif kind == "error":
                    out["ename"] = msg["content"].get("ename")
                elif kind == "status" and msg["content"].get("execution_state") == "idle":
                    idle = True
                elif kind == "execute_reply":
                    out["status"] = msg["content"]["status"]
                    out["ename"] = out["ename"] or msg["content"].get("ename")
                if idle and out["status"] is not None:  # reply and all output (iopub idle) seen
                    return out
