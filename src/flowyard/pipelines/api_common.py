"""Helpers of the KFP v2beta1 facade: lookups by KFP id, namespaces, KFP-shaped objects,
filters, sorting and paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from flowyard.accounts import Principal
from flowyard.errors import Forbidden, Invalid, NotFound
from flowyard.kinds import Kind, Manifest
from flowyard.namespaces import ROLES
from flowyard.platform import Platform
from flowyard.pipelines.kinds import LABEL_PIPELINE, PIPELINE, PIPELINE_VERSION
from flowyard.store.tables import resources

# -- lookups ----------------------------------------------------------------------------------


def find(p: Platform, kind: Kind, uid: str) -> Manifest:
    """The object of `kind` whose KFP id (resource uid) is `uid`."""
    with p.store.engine.connect() as conn:
        row = conn.execute(select(resources.c.namespace, resources.c.name).where(
            resources.c.uid == uid, resources.c.kind == kind.name)).first()
    if row is None:
        raise NotFound(f"{_word(kind)} '{uid}' not found")
    return p.store.get(kind, row.namespace, row.name)


def _word(kind: Kind) -> str:
    return {"PipelineVersion": "pipeline version", "RecurringRun": "recurring run"}.get(kind.name, kind.name.lower())


def find_allowed(p: Platform, who: Principal, kind: Kind, uid: str, role: str) -> Manifest:
    """`find`, then require `role` in its namespace (an outsider gets the same 404 as for a missing id)."""
    obj = find(p, kind, uid)
    try:
        p.namespaces.require(who, obj["metadata"]["namespace"], role)
    except Forbidden:
        held = p.namespaces.roles_of(who.user).get(obj["metadata"]["namespace"])
        if held is None or who.token_namespace:
            raise NotFound(f"{_word(kind)} '{uid}' not found") from None
        raise
    return obj


def default_namespace(p: Platform, who: Principal) -> str:
    """The caller's namespace when a client leaves it empty: their own, else the first they can edit."""
    if who.token_namespace:
        return who.token_namespace
    roles = p.namespaces.roles_of(who.user)
    if who.user in roles or (who.admin and p.namespaces.exists(who.user)):
        return who.user
    editable = sorted(n for n, r in roles.items() if ROLES[r] >= ROLES["edit"])
    if editable:
        return editable[0]
    if roles:
        return sorted(roles)[0]
    raise Invalid("you are not a member of any namespace: pass namespace=<name>")


def namespace_of(p: Platform, who: Principal, namespace: str | None, role: str) -> str:
    ns = namespace or default_namespace(p, who)
    p.namespaces.require(who, ns, role)
    return ns


def version_spec(p: Platform, namespace: str, ref: dict[str, Any]) -> dict[str, Any]:
    """The PipelineSpec a version reference names (the pipeline's latest version without a version id)."""
    vid, pid = ref.get("pipelineVersionId") or ref.get("pipeline_version_id"), ref.get("pipelineId") or ref.get("pipeline_id")
    if vid:
        version = find(p, PIPELINE_VERSION, vid)
    elif pid:
        version = latest_version(p, find(p, PIPELINE, pid))
    else:
        raise Invalid("pipeline_version_reference needs pipeline_id and pipeline_version_id")
    if version["metadata"]["namespace"] != namespace:
        raise NotFound(f"pipeline version '{vid or pid}' not found in namespace '{namespace}'")
    if pid and version["spec"].get("pipelineId") not in (None, "", pid):
        raise Invalid(f"pipeline version '{vid}' does not belong to pipeline '{pid}'")
    return version["spec"]["pipelineSpec"]


def versions_of(p: Platform, pipeline: Manifest) -> list[Manifest]:
    return all_items(p, PIPELINE_VERSION, pipeline["metadata"]["namespace"],
                     f"{LABEL_PIPELINE}={pipeline['metadata']['uid']}")


def latest_version(p: Platform, pipeline: Manifest) -> Manifest:
    versions = versions_of(p, pipeline)
    if not versions:
        raise NotFound(f"pipeline '{pipeline['metadata']['uid']}' has no versions")
    return max(versions, key=lambda v: (v["metadata"]["creationTimestamp"], v["metadata"]["generation"],
                                        v["metadata"]["resourceVersion"]))


def all_items(p: Platform, kind: Kind, ns: str, selector: str | None = None) -> list[Manifest]:
    out: list[Manifest] = []
    token = None
    while True:
        items, token = p.store.list(kind, ns, label_selector=selector, continue_=token)
        out += items
        if not token:
            return out


# -- filters, sorting, paging ------------------------------------------------------------------

_OPS = {1: "EQUALS", 2: "NOT_EQUALS", 3: "GREATER_THAN", 5: "GREATER_THAN_EQUALS", 6: "LESS_THAN",
        7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}
_VALUE_KEYS = ("string_value", "stringValue", "int_value", "intValue", "long_value", "longValue",
               "timestamp_value", "timestampValue", "string_values", "stringValues", "int_values", "intValues",
               "long_values", "longValues")


def _value(pred: dict) -> Any:
    for key in _VALUE_KEYS:
        if key in pred:
            v = pred[key]
            if isinstance(v, dict) and "values" in v:  # {"string_values": {"values": [...]}}
                v = v["values"]
            if key.startswith(("timestamp",)) and not isinstance(v, str):
                v = datetime.fromtimestamp(int(v), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return v
    return None


def parse_filter(text: str | None) -> list[tuple[str, str, Any]]:
    """[(key, operation, value)] from a KFP filter (JSON; operations by name or number)."""
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        raise Invalid('filter must be JSON like {"predicates":[{"key":"display_name","operation":"EQUALS",'
                      '"string_value":"x"}]}') from None
    if not isinstance(data, dict) or not isinstance(data.get("predicates", []), list):
        raise Invalid("filter must be an object with a list of predicates")
    out = []
    for pred in data.get("predicates", []):
        if not isinstance(pred, dict) or not pred.get("key"):
            raise Invalid("each filter predicate needs a key")
        op = pred.get("operation", pred.get("op", "EQUALS"))
        op = _OPS.get(op, op) if isinstance(op, int) else str(op).upper()
        if op not in _OPS.values():
            raise Invalid(f"filter operation '{op}' is unknown: use one of {', '.join(_OPS.values())}")
        out.append((str(pred["key"]), op, _value(pred)))
    return out




def _field(item: dict, key: str, id_key: str) -> Any:
    """A KFP field by name (`name`/`id` aliases, dotted paths into nested objects)."""
    key = {"name": "display_name", "id": id_key}.get(key, key)
    value: Any = item
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10 or value[4:5] != "-":
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def matches(item: dict, preds: list[tuple[str, str, Any]], id_key: str) -> bool:
    for key, op, want in preds:
        have = _field(item, key, id_key)
        if isinstance(have, (int, float)) and isinstance(want, str):
            try:
                want = type(have)(want)
            except ValueError:
                pass
        if _when(have) is not None and _when(want) is not None:  # timestamps: compare instants, not text
            have, want = _when(have), _when(want)
        try:
            ok = {
                "EQUALS": lambda: have == want,
                "NOT_EQUALS": lambda: have != want,
                "GREATER_THAN": lambda: have is not None and have > want,
                "GREATER_THAN_EQUALS": lambda: have is not None and have >= want,
                "LESS_THAN": lambda: have is not None and have < want,
                "LESS_THAN_EQUALS": lambda: have is not None and have <= want,
                "IN": lambda: have in (want or []),
                "IS_SUBSTRING": lambda: have is not None and str(want) in str(have),
            }[op]()
        except TypeError:
            raise Invalid(f"filter on '{key}' compares values of different types") from None
        if not ok:
            return False
    return True


def _order(value: Any) -> tuple[int, float, str]:
    """A sort key: missing values first, numbers by value, timestamps by instant, the rest as text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    t = _when(value)
    if t is not None:
        return (1, t.timestamp(), "")
    return (2, 0.0, value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def page(items: list[dict], id_key: str, filter_: str | None, sort_by: str | None, page_size: int | None,
         page_token: str | None) -> tuple[list[dict], int, str | None]:
    """Filter, sort and page KFP-shaped items: (page, total matching, next page token)."""
    preds = parse_filter(filter_)
    items = [i for i in items if matches(i, preds, id_key)]
    field, desc = "created_at", False
    if sort_by:
        parts = sort_by.strip().split()
        field = {"name": "display_name", "id": id_key}.get(parts[0], parts[0])
        if len(parts) > 1:
            if parts[1].lower() not in ("asc", "desc"):
                raise Invalid(f"sort_by '{sort_by}' is invalid: use '<field>' or '<field> desc'")
            desc = parts[1].lower() == "desc"
    items.sort(key=lambda i: (*_order(_field(i, field, id_key)), i.get(id_key) or ""), reverse=desc)
    start = 0
    if page_token:
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except Exception:
            raise Invalid("invalid page_token: pass back the next_page_token of the last page") from None
    size = page_size or 0
    if size < 0:
        raise Invalid("page_size must not be negative")
    size = min(size or 100, 1000)
    chunk = items[start:start + size]
    token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if start + size < len(items) else None
    return chunk, len(items), token


def listing(key: str, items: list[dict], total: int, token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {key: items, "total_size": total}
    if token:
        out["next_page_token"] = token
    return out


Convert = Callable[[Manifest], dict[str, Any]]
