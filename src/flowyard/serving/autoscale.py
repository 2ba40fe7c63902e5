"""How many replicas a revision should have: concurrency-based, with a slow way down and scale to zero.

The signal is the mean number of in-flight requests since the previous decision (the gateway
counts them, `Revision.concurrency()`), divided by `scaleTarget`: more replicas at once, fewer
only after the load stayed lower for `serving.flowyard.io/scale-down-delay` seconds, none (when
`minReplicas` is 0) after `serving.flowyard.io/scale-to-zero-after` seconds without a request.
A request waiting for a replica (`Revision.wanted`) always gets one.
"""

from __future__ import annotations

import math
import time

from flowyard.kinds import Manifest
from flowyard.serving.endpoints import Revision
from flowyard.serving.kind import SCALE_DOWN_DELAY, SCALE_TO_ZERO_AFTER, Predictor, annotation_seconds


def replicas(obj: Manifest, pred: Predictor, revision: Revision) -> int:
    """How many replicas the revision should have now."""
    live = [r for r in revision.replicas.values() if not r.draining]
    current = revision.target if revision.target is not None else len(live)
    clock = time.monotonic()
    load = revision.concurrency()
    want = math.ceil(load / pred.scale_target - 1e-9) if load > 0 else 0
    if revision.inflight or revision.wanted is not None:
        want = max(want, 1)
    idle = clock - revision.last_request
    floor = pred.min_replicas
    if floor == 0 and (revision.wanted is not None or
                       idle < annotation_seconds(obj, SCALE_TO_ZERO_AFTER, 60.0) and current > 0):
        floor = 1
    want = min(max(want, floor), pred.max_replicas)
    if want >= current:
        revision.low_since = None
        return want
    if want == 0:  # idle for the whole scale-to-zero period already
        revision.low_since = None
        return 0
    revision.low_since = revision.low_since or clock
    if clock - revision.low_since >= annotation_seconds(obj, SCALE_DOWN_DELAY, 30.0):
        revision.low_since = None
        return want
    return current
