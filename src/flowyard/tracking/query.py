"""The compare view's query: runs of an experiment, filtered and sorted by their metrics,
params, tags and attributes, one page at a time, with params and latest metrics as columns.

Filter grammar (keywords in any case)::

    expr  := term (OR term)*            term := factor (AND factor)*
    factor:= NOT factor | '(' expr ')' | NAME op VALUE | NAME [NOT] IN '(' VALUE, ... ')'
           | NAME IS [NOT] NULL | NAME [NOT] LIKE 'text%'
    NAME  := metrics.<key> | params.<key> | tags.<key> | attributes.<state|name|created|source|uid>
             (also metric/param/tag/attr/run; a key with odd characters in backquotes: metrics.`val loss`)
    op    := = | != | < | <= | > | >=          VALUE := number | 'text' | "text"

e.g. `metrics.accuracy > 0.9 AND (params.lr < 0.1 OR params.optimizer IN ('adam', 'sgd'))`.
Each metric or param named gets one LEFT JOIN on its (run, key) primary key, so a filter
costs one index lookup per run; params compare as numbers (their `num` column) when the value
given is a number. Runs without the metric or param never match a comparison on it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true

from flowyard.errors import Invalid
from flowyard.platform import Platform
from flowyard.tracking.store import details
from flowyard.tracking.tables import latest_metrics, run_params, run_tags, tracking_keys, tracking_runs

MAX_PAGE = 1000
_TOKEN = re.compile(r"""\s*(?:
    (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|!=|<>|==|=|<|>|\(|\)|,)
  | (?P<name>[A-Za-z_][\w]*(?:\.(?:`[^`]+`|[\w.\-/:]+))?)
)""", re.X)
_PREFIX = {"metrics": "metric", "metric": "metric", "params": "param", "param": "param", "parameters": "param",
           "tags": "tag", "tag": "tag", "attributes": "attr", "attribute": "attr", "attr": "attr", "run": "attr"}
_ATTRS = {"state": tracking_runs.c.state, "status": tracking_runs.c.state, "name": tracking_runs.c.name,
          "created": tracking_runs.c.created_at, "created_at": tracking_runs.c.created_at,
          "start_time": tracking_runs.c.created_at, "source": tracking_runs.c.source, "uid": tracking_runs.c.uid,
          "run_id": tracking_runs.c.uid, "finished": tracking_runs.c.finished_at}
_KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE"}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(f"filter: cannot read {text[pos:pos + 20].strip()!r} at character {pos + 1}")
        pos = m.end()
        if m.group("num") is not None:
            out.append(("value", float(m.group("num"))))
        elif m.group("str") is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op") is not None:
            out.append(("op", {"<>": "!=", "==": "="}.get(m.group("op"), m.group("op"))))
        else:
            word = m.group("name")
            out.append(("kw", word.upper()) if word.upper() in _KEYWORDS else ("name", word))
    return out


class _Compiler:
    """Turns filter and sort text into SQLAlchemy expressions over `tracking_runs` plus joins."""

    def __init__(self) -> None:
        self.joins: dict[tuple[str, str], Any] = {}
        self.toks: list[tuple[str, Any]] = []
        self.i = 0

    def column(self, name: str, numeric: bool) -> ColumnElement[Any]:
        prefix, dot, key = name.partition(".")
        kind = _PREFIX.get(prefix.lower()) if dot else None
        if kind is None:
            if dot or name.lower() not in _ATTRS:
                raise Invalid(f"filter: unknown name '{name}': use metrics.<key>, params.<key>, tags.<key> or "
                              f"attributes.<{'|'.join(sorted({'state', 'name', 'created', 'source'}))}>")
            kind, key = "attr", name
        key = key[1:-1] if key.startswith("`") and key.endswith("`") else key
        if kind == "attr":
            if key.lower() not in _ATTRS:
                raise Invalid(f"filter: unknown attribute '{key}': use state, name, created, source or uid")
            return _ATTRS[key.lower()]
        table = {"metric": latest_metrics, "param": run_params, "tag": run_tags}[kind]
        alias = self.joins.get((kind, key))
        if alias is None:
            alias = self.joins[(kind, key)] = table.alias(f"j{len(self.joins)}")
        if kind == "metric":
            return alias.c.value
        return alias.c.num if kind == "param" and numeric else alias.c.value

    # -- recursive descent ------------------------------------------------------------------

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: Any = None) -> Any:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            want = value or {"value": "a number or 'text'", "name": "a name like metrics.accuracy"}.get(kind, kind)
            got = "the end" if tok is None else repr(tok[1])
            raise Invalid(f"filter: expected {want} but found {got}")
        self.i += 1
        return tok[1]

    def parse(self, text: str) -> ColumnElement[bool]:
        self.toks, self.i = _tokens(text), 0
        if not self.toks:
            return true()
        expr = self.disjunction()
        if self.peek() is not None:
            raise Invalid(f"filter: unexpected {self.peek()[1]!r}: join conditions with AND or OR")  # type: ignore[index]
        return expr

    def disjunction(self) -> ColumnElement[bool]:
        parts = [self.conjunction()]
        while self.peek() == ("kw", "OR"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def conjunction(self) -> ColumnElement[bool]:
        parts = [self.factor()]
        while self.peek() == ("kw", "AND"):
            self.i += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def factor(self) -> ColumnElement[bool]:
        tok = self.peek()
        if tok == ("kw", "NOT"):
            self.i += 1
            return not_(self.factor())
        if tok == ("op", "("):
            self.i += 1
            expr = self.disjunction()
            self.take("op", ")")
            return expr
        return self.comparison()

    def comparison(self) -> ColumnElement[bool]:
        name = self.take("name")
        tok = self.peek()
        negate = tok == ("kw", "NOT")
        if negate:
            self.i += 1
            tok = self.peek()
        if tok == ("kw", "IN"):
            self.i += 1
            self.take("op", "(")
            values = [self.take("value")]
            while self.peek() == ("op", ","):
                self.i += 1
                values.append(self.take("value"))
            self.take("op", ")")
            numeric = all(isinstance(v, float) for v in values)
            col = self.column(name, numeric)
            expr = col.in_(values)
            return and_(col.is_not(None), not_(expr)) if negate else expr
        if tok == ("kw", "LIKE"):
            self.i += 1
            pattern = self.take("value")
            col = self.column(name, False)
            expr = col.like(str(pattern))
            return and_(col.is_not(None), not_(expr)) if negate else expr
        if negate:
            raise Invalid(f"filter: NOT after '{name}' must be followed by IN or LIKE")
        if tok == ("kw", "IS"):
            self.i += 1
            is_not = self.peek() == ("kw", "NOT")
            if is_not:
                self.i += 1
            self.take("kw", "NULL")
            col = self.column(name, False)
            return col.is_not(None) if is_not else col.is_(None)
        op = self.take("op")
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise Invalid(f"filter: '{op}' is not a comparison: use = != < <= > >= IN LIKE")
        value = self.take("value")
        col = self.column(name, isinstance(value, float))
        return {"=": col == value, "!=": col != value, "<": col < value, "<=": col <= value,
                ">": col > value, ">=": col >= value}[op]

    def joined(self, query: Any) -> Any:
        """`query` (over tracking_runs) with the LEFT JOINs the names used need."""
        for (kind, key), alias in self.joins.items():
            query = query.outerjoin(alias, and_(alias.c.run_uid == tracking_runs.c.uid, alias.c.key == key))
        return query

    def order(self, items: list[str]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            text = item.strip()
            m = re.fullmatch(r"(.+?)(?:\s+(ASC|DESC))?", text, re.I)
            if not text or not m:
                raise Invalid(f"order_by '{item}': use e.g. 'metrics.accuracy DESC'")
            desc = (m.group(2) or "").upper() == "DESC"
            name = m.group(1).strip()
            for col in ([self.column(name, True), self.column(name, False)]
                        if name.lower().startswith(("param.", "params.", "parameters.")) else [self.column(name, True)]):
                out.append((col.desc() if desc else col.asc()).nulls_last())
        return out


def search(p: Platform, namespace: str, experiment: str | None, filter: str = "", order_by: list[str] | None = None,
           page_size: int = 50, page_token: str | None = None) -> dict[str, Any]:
    """One page of runs with their params, tags and latest metrics, and the column names."""
    if not 1 <= page_size <= MAX_PAGE:
        raise Invalid(f"page_size must be between 1 and {MAX_PAGE}")
    try:
        offset = int(page_token or 0)
    except ValueError:
        raise Invalid("page_token is invalid: pass the nextPageToken of the previous page") from None
    if len(filter) > 10_000:
        raise Invalid("filter is too long (at most 10000 characters)")
    c = _Compiler()
    where = c.parse(filter)
    scope = [tracking_runs.c.namespace == namespace]
    if experiment is not None:
        scope.append(tracking_runs.c.experiment == experiment)
    counted = c.joined(select(func.count()).select_from(tracking_runs)).where(*scope, where)  # before the sort joins
    order = c.order(order_by or []) + [tracking_runs.c.created_at.desc(), tracking_runs.c.uid]
    base = c.joined(select(tracking_runs).select_from(tracking_runs)).where(*scope, where)
    keys = select(tracking_keys.c.kind, tracking_keys.c.key).where(tracking_keys.c.namespace == namespace)
    if experiment is not None:
        keys = keys.where(tracking_keys.c.experiment == experiment)
    with p.store.engine.connect() as conn:
        rows = conn.execute(base.order_by(*order).limit(page_size).offset(offset)).all()
        total = conn.execute(counted).scalar_one()
        names = conn.execute(keys).all()
    metric_keys = sorted({k for kind, k in names if kind == "metric"})
    param_keys = sorted({k for kind, k in names if kind == "param"})
    extra = details(p, [r.uid for r in rows])
    runs = []
    for r in rows:
        d = extra[r.uid]
        runs.append({"uid": r.uid, "name": r.name, "experiment": r.experiment, "source": r.source, "state": r.state,
                     "createdAt": r.created_at, "finishedAt": r.finished_at, "params": d["params"], "tags": d["tags"],
                     "metrics": {k: v["value"] for k, v in d["metrics"].items()}})
    following = offset + len(rows)
    return {"runs": runs, "total": total, "metricKeys": metric_keys, "paramKeys": param_keys,
            "nextPageToken": str(following) if following < total else None}
