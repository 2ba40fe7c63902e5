"""Errors the client raises: the server's answer turned back into `flowyard.errors` classes.

The server sends `{"code", "message", "status"}`; we raise the class with that code (or,
failing that, the one for the HTTP status) carrying the server's message, so callers catch
the same `NotFound` or `Forbidden` the server raised.
"""

from __future__ import annotations

from typing import Any

import httpx

from flowyard import errors
from flowyard.errors import FlowyardError


class Unreachable(FlowyardError):
    """The server could not be reached (down, wrong URL, TLS trouble, timeout)."""

    status = 503
    code = "Unreachable"


class NotConfigured(FlowyardError):
    """No server URL or credentials were given and none were saved by `flowyard login`."""

    status = 401
    code = "NotConfigured"


class WaitTimeout(FlowyardError):
    """An object did not reach the awaited phase in time."""

    status = 408
    code = "Timeout"


def _subclasses(cls: type[FlowyardError]) -> list[type[FlowyardError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


_BY_CODE: dict[str, type[FlowyardError]] = {
    c.code: c for c in _subclasses(FlowyardError) if c.__module__ == errors.__name__
}
_BY_CODE["BadRequest"] = errors.Invalid
_BY_STATUS: dict[int, type[FlowyardError]] = {
    400: errors.Invalid, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    409: errors.Conflict, 422: errors.Invalid, 429: errors.TooManyRequests,
}


def from_response(response: httpx.Response) -> FlowyardError:
    """The error an unsuccessful response stands for, with the server's message."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code, message = str(body.get("code") or ""), body["message"]
    else:
        code, message = "", f"HTTP {response.status_code} from {response.request.url}"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code)
    if cls is None:
        err = FlowyardError(message)
        err.status, err.code = response.status_code, code or "Error"
        return err
    err = cls(message)
    if "retry-after" in response.headers:
        err.details["retry_after"] = response.headers["retry-after"]
    return err
