"""Flowyard: an MLOps platform in one process.

For programs: `flowyard.Client(url, token)` talks to a running platform (it reads
`FLOWYARD_URL` / `FLOWYARD_TOKEN`, or what `flowyard login` saved, when not given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__", "log_metric", "log_metrics", "log_param", "log_params", "set_tag",
           "start_run", "end_run", "active_run", "flush", "tune"]

if TYPE_CHECKING:
    from flowyard.sdk import Client


_TRACKING = ("log_metric", "log_metrics", "log_param", "log_params", "set_tag", "start_run", "end_run",
             "active_run", "flush")
"""Tracking (`flowyard.tracking.client`): metrics, params and tags of the current run."""


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the server and the runner do not pay for the client.
    if name == "Client":
        from flowyard.sdk import Client

        return Client
    if name == "tune":  # hyperparameter tuning as Katib experiments (flowyard.tuning.sdk)
        from flowyard.tuning.sdk import tune

        return tune
    if name in _TRACKING:
        from flowyard.tracking import client as tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'flowyard' has no attribute {name!r}")
