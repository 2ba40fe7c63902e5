"""One HTTP connection pool to a Flowyard server, turning failures into typed errors."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from flowyard.errors import Invalid
from flowyard.sdk.errors import Unreachable, from_response


def _unreachable(url: str, exc: Exception) -> Exception:
    """A one-line explanation of why `url` could not be talked to."""
    text = str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return Unreachable(f"the TLS certificate of {url} is not trusted: give its CA (`flowyard login "
                               "--ca-cert FILE`, Client(verify=FILE)) or, for a self-signed server, skip the "
                               "check (--insecure, verify=False)")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return Invalid(f"invalid Flowyard URL '{url}': use http(s)://HOST:PORT")
    if isinstance(exc, httpx.TimeoutException):
        return Unreachable(f"Flowyard at {url} did not answer in time")
    return Unreachable(f"cannot reach Flowyard at {url}: is it running? (flowyard up)"
                       + (f" [{text}]" if text and "connect" not in text.lower() else ""))


class Transport:
    """JSON requests against `url` with a bearer token; raises `flowyard.errors` classes."""

    def __init__(self, url: str, token: str | None, verify: bool | str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Accept": "application/json", "User-Agent": "flowyard-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, verify=verify, timeout=timeout)
        except (OSError, ssl.SSLError) as e:
            raise Invalid(f"cannot use CA bundle '{verify}': {e}") from e

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer of a request; raises on any error."""
        try:
            response = self._http.request(method, path, json=json, params=_clean(params))
        except httpx.HTTPError as e:
            raise _unreachable(self.url, e) from None
        if response.is_error:
            raise from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"{self.url} answered {method} {path} with something that is not JSON: "
                              "is this a Flowyard server?") from None

    @contextmanager
    def stream(self, path: str, params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A streamed GET (no read timeout, for following logs)."""
        timeout = httpx.Timeout(30.0, read=None)
        try:
            with self._http.stream("GET", path, params=_clean(params), timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise from_response(response)
                yield response
        except httpx.HTTPError as e:
            raise _unreachable(self.url, e) from None


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop unset parameters and spell booleans as the server expects."""
    if not params:
        return None
    return {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items() if v is not None}
