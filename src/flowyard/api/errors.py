"""The one place where errors become HTTP responses: `{"code": ..., "message": ...}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from flowyard.api.json import JSON
from flowyard.errors import FlowyardError

log = logging.getLogger("flowyard")
_HTTP_CODES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 413: "TooLarge", 415: "UnsupportedMediaType",
               422: "Invalid", 429: "TooManyRequests"}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSON:
    return JSON({"code": code, "message": message, "status": status}, status_code=status, headers=headers)


def _describe(errors: list) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        if err.get("type") == "dict_type" and tuple(err.get("loc", ())) == ("body",):
            return "the body must be a JSON object; send it with Content-Type: application/json"
        if err.get("type") == "json_invalid":
            return "the body is not valid JSON: " + str(err.get("ctx", {}).get("error", "check the syntax"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(FlowyardError)
    async def _flowyard(_: Request, exc: FlowyardError) -> JSON:
        headers = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSON:
        return error_response(422, "Invalid", _describe(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSON:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such path: see /openapi.json for the API"
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "Error"), message,
                              getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "InternalError", "internal error: the server log has the details")
