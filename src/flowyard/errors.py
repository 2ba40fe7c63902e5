"""The one error hierarchy of Flowyard.

Business code raises these; the HTTP layer maps them to status codes in one place
(`flowyard.api.errors`) and the CLI maps them to one line and an exit code.
"""

from __future__ import annotations


class FlowyardError(Exception):
    """Root of every error a user can see."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(FlowyardError):
    """The request is malformed or names something impossible."""

    status = 422
    code = "Invalid"


class Unauthorized(FlowyardError):
    """No valid credentials were given."""

    status = 401
    code = "Unauthorized"


class Forbidden(FlowyardError):
    """The caller is known but lacks the role for this action."""

    status = 403
    code = "Forbidden"


class NotFound(FlowyardError):
    """The named object does not exist (or the caller may not know it does)."""

    status = 404
    code = "NotFound"


class Conflict(FlowyardError):
    """The object changed since it was read, or already exists."""

    status = 409
    code = "Conflict"


class AlreadyExists(Conflict):
    """An object with this name already exists."""

    code = "AlreadyExists"


class QuotaExceeded(FlowyardError):
    """The namespace quota does not allow this."""

    status = 403
    code = "QuotaExceeded"


class TooManyRequests(FlowyardError):
    """The caller must slow down (failed logins)."""

    status = 429
    code = "TooManyRequests"
