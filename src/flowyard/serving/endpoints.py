"""The routing table the gateway reads on every request: endpoints, revisions, ready replicas.

It lives in memory (one server process owns its replicas); the controller writes it, the REST
router and the gRPC front read it and count in-flight requests in it. Those counts are what
the autoscaler scales on, and what draining waits for before a replica is stopped.

`authorise` (who may call an endpoint, REST and gRPC alike) and `choose_replica` (the split, then
the least busy replica, waiting for a cold start) are the two calls both fronts make.

Traffic between revisions is split by percent with a fixed permutation of 0..99, so every
100 consecutive requests split exactly as asked; within a revision the replica with the fewest
in-flight requests gets the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowyard.errors import Unauthorized
from flowyard.server import proxy

if TYPE_CHECKING:
    from flowyard.platform import Platform

SECRET_HEADER = "X-Flowyard-Serving-Secret"
SECRET_ENV = "FLOWYARD_SERVING_SECRET"
REVISION_HEADER = "X-Flowyard-Revision"
COLD_START_WAIT = 180.0
"""Seconds a request waits for a scaled-to-zero revision to start a replica."""
_STRIDE = 37  # coprime with 100: (i * 37) % 100 visits 0..99 once per 100 requests, spread out
_KEY = "serving.endpoints"


def serving_secret(session_key: bytes, uid: str) -> str:
    """The secret a replica of InferenceService `uid` demands on every request (never stored)."""
    return hmac.new(session_key, f"serving:{uid}".encode(), hashlib.sha256).hexdigest()


@dataclass(eq=False)
class Replica:
    """One model server process of a revision."""

    id: str
    http: str
    """host:port of its REST listener."""
    grpc: str
    """host:port of its gRPC listener."""
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    draining: bool = False
    inflight: int = 0
    waiting: str = ""
    """Why the executor has not started it yet (admission), if it has not."""

    @property
    def routable(self) -> bool:
        return self.ready and not self.draining


@dataclass(eq=False)
class Revision:
    """One version of the predictor: its replicas and the load they carry."""

    name: str
    version: str
    replicas: dict[str, Replica] = field(default_factory=dict)
    percent: int = 0
    inflight: int = 0
    last_request: float = field(default_factory=time.monotonic)
    wanted: float | None = None
    """When a request found no ready replica (monotonic), until one is ready: the activator's flag."""
    target: int | None = None
    """Replicas the autoscaler wants (None until the controller decides)."""
    low_since: float | None = None
    _area: float = 0.0
    _mark: float = field(default_factory=time.monotonic)
    _sampled: float = field(default_factory=time.monotonic)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def routable(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.routable]

    def refresh(self) -> None:
        """Wake requests waiting for a replica once one is routable."""
        if any(r.routable for r in self.replicas.values()):
            self._ready.set()
        else:
            self._ready.clear()

    def pick(self) -> Replica | None:
        best: Replica | None = None
        for r in self.replicas.values():
            if r.ready and not r.draining and (best is None or r.inflight < best.inflight):
                best = r
        return best

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _account(self, now: float) -> None:
        self._area += self.inflight * (now - self._mark)
        self._mark = now

    def begin(self, replica: Replica) -> None:
        now = time.monotonic()
        self._account(now)
        self.inflight += 1
        replica.inflight += 1
        self.last_request = now

    def end(self, replica: Replica) -> None:
        now = time.monotonic()
        self._account(now)
        self.inflight -= 1
        replica.inflight -= 1
        self.last_request = now

    def concurrency(self) -> float:
        """Mean in-flight requests since the previous call (the autoscaler's signal)."""
        now = time.monotonic()
        self._account(now)
        span = now - self._sampled
        mean = self._area / span if span > 0 else float(self.inflight)
        self._area, self._sampled = 0.0, now
        return mean


@dataclass(eq=False)
class Endpoint:
    """One InferenceService as the gateway sees it."""

    namespace: str
    name: str
    uid: str
    secret: str
    timeout: float = 60.0
    public: bool = False
    revisions: dict[str, Revision] = field(default_factory=dict)
    split: list[Revision] = field(default_factory=list)
    """100 slots, each naming the revision that gets that share of traffic."""
    grpc_port: int | None = None
    _counter: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def set_traffic(self, percents: dict[str, int]) -> None:
        """Split traffic as {revision name: percent} (percents add up to 100, or nothing routes)."""
        for rev in self.revisions.values():
            rev.percent = percents.get(rev.name, 0)
        slots: list[Revision] = []
        for name, pct in sorted(percents.items()):
            if pct > 0 and name in self.revisions:
                slots += [self.revisions[name]] * pct
        self.split = slots

    def choose(self) -> Revision | None:
        """The revision the next request goes to, by the traffic split."""
        if not self.split:
            return None
        self._counter += 1
        return self.split[(self._counter * _STRIDE) % len(self.split)]


def table(platform: Any) -> dict[tuple[str, str], Endpoint]:
    """The platform's routing table, {(namespace, name): Endpoint}."""
    return platform.extra.setdefault(_KEY, {})


def lookup(platform: Any, namespace: str, name: str) -> Endpoint | None:
    return platform.extra.get(_KEY, {}).get((namespace, name))


def authorise(p: Platform, ep: Endpoint, authorization: str | None) -> None:
    """Raise Unauthorized/Forbidden unless the caller may use the endpoint (shared with REST)."""
    if ep.public:
        return
    if not authorization:
        raise Unauthorized("send 'authorization: Bearer <token>' of a member of namespace "
                           f"'{ep.namespace}'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use 'authorization: Bearer <token>'")
    who = p.accounts.authenticate_token(token.strip())
    p.namespaces.require(who, ep.namespace, "view")


async def choose_replica(p: Platform, ep: Endpoint) -> tuple[Revision, Replica]:
    """The revision (by the traffic split) and its least busy ready replica; waits for a cold start."""
    revision = ep.choose()
    if revision is None:
        raise proxy.Unavailable(f"inference service '{ep.name}' has no ready revision yet: see its status "
                          f"(flowyard describe inferenceservice {ep.name} -n {ep.namespace})", retry_after=2)
    replica = revision.pick()
    if replica is None:
        if revision.wanted is None:
            revision.wanted = revision.last_request = time.monotonic()
        if p.controllers is not None:
            p.controllers.enqueue("InferenceService", ep.namespace, ep.name)
        deadline = time.monotonic() + COLD_START_WAIT
        while replica is None and time.monotonic() < deadline:
            await revision.wait_ready(deadline - time.monotonic())
            replica = revision.pick()
            if replica is None:  # taken again (draining) meanwhile: wait for the next one
                await asyncio.sleep(0.05)
        if replica is None:
            raise proxy.Unavailable(f"inference service '{ep.name}' has no ready replica (revision {revision.name} "
                              f"did not start within {COLD_START_WAIT:g} s)", retry_after=5)
    return revision, replica
