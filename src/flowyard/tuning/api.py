"""The push route: a running trial posts its metrics (Katib's `Push` collector, over HTTP).

`POST /api/v1/namespaces/{ns}/trials/{name}/metrics` with `{"metrics": {"loss": 0.1}}`.
The trial's own workload authenticates with `X-Flowyard-Trial-Token` (its env has it: an
HMAC of the trial's uid, valid for that trial only); anyone else needs the `edit` role.
"""

from __future__ import annotations

import asyncio
import hmac
import math
from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Request

from flowyard.api import resources
from flowyard.api.deps import optional_principal, platform
from flowyard.errors import Conflict, Invalid, Unauthorized
from flowyard.platform import Platform
from flowyard.tuning import metrics, trials
from flowyard.tuning.kinds import EXPERIMENT, EXPERIMENT_LABEL, TRIAL

router = APIRouter(prefix="/api/v1", tags=["tuning"])
resources.LOG_SOURCES["Trial"] = trials.logs
_Metrics = Body(..., description='{"metrics": {"<name>": <number>, ...}}', examples=[{"metrics": {"loss": 0.25}}])


@router.post("/namespaces/{namespace}/trials/{name}/metrics", summary="Report metrics of a running trial",
             status_code=202)
async def report(namespace: str, name: str, request: Request, body: dict[str, Any] = _Metrics,
                 trial_token: str | None = Header(None, alias=trials.TOKEN_HEADER),
                 p: Platform = Depends(platform)) -> dict[str, Any]:
    if trial_token is None:
        who = optional_principal(request)
        if who is None:
            raise Unauthorized(f"send the trial's {trials.TOKEN_HEADER} (from FLOWYARD_TRIAL_TOKEN) or a bearer token")
        p.namespaces.require(who, namespace, "edit")
    trial = p.store.get(TRIAL, namespace, name)
    if trial_token is not None and not hmac.compare_digest(trial_token, trials.token(p.session_key,
                                                                                    trial["metadata"]["uid"])):
        raise Unauthorized(f"the {trials.TOKEN_HEADER} is not this trial's")
    values = body.get("metrics") if isinstance(body, dict) else None
    if not isinstance(values, dict) or not values:
        raise Invalid('the body must be {"metrics": {"<name>": <number>, ...}}')
    clean: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise Invalid(f"metric {key!r} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise Invalid(f"metric {key!r} must be a finite number, got {value!r}")
        clean[str(key)] = number
    if trial["status"].get("phase") in trials.TERMINAL:
        raise Conflict(f"trial '{name}' is {trial['status']['phase']}: it takes no more metrics")
    await asyncio.to_thread(metrics.push, p, namespace, trial["metadata"]["uid"], clean)
    if p.controllers is not None:
        p.controllers.enqueue(EXPERIMENT.name, namespace, trial["metadata"]["labels"].get(EXPERIMENT_LABEL, ""))
    return {"accepted": sorted(clean)}
