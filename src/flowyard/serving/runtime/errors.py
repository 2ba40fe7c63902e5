"""Errors of an inference request, each with the HTTP status that every protocol maps from.

gRPC codes follow from the HTTP status in `grpc_server.py`; the REST front ends write
`{"error": message}` bodies (TF Serving, KServe and the Open Inference Protocol agree on that).
"""

from __future__ import annotations

from flowyard.errors import FlowyardError


class InvalidInput(FlowyardError):
    """Malformed tensor, wrong shape or datatype, unknown output: the caller must fix the request."""

    status = 400
    code = "InvalidInput"


class ModelNotFound(FlowyardError):
    """The request names a model or version this replica does not serve."""

    status = 404
    code = "ModelNotFound"


class NotReady(FlowyardError):
    """The model is still loading."""

    status = 503
    code = "NotReady"


class DeadlineExceeded(FlowyardError):
    """The request waited and ran longer than the replica's timeout."""

    status = 504
    code = "DeadlineExceeded"


class LoadFailed(FlowyardError):
    """The model could not be loaded; the replica exits with code 3 and this message."""

    code = "LoadFailed"
