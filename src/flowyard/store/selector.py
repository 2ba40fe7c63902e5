"""Kubernetes label selectors (`app=web,tier!=db,env in (a,b),gpu,!legacy`) as SQL conditions."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, and_, exists, not_, select

from flowyard.errors import Invalid
from flowyard.store.tables import labels, resources

_TERM = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[\w.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def _split(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t for t in terms if t.strip()]


def _has(key: str, values: list[str] | None = None) -> ColumnElement[bool]:
    cond = and_(labels.c.uid == resources.c.uid, labels.c.key == key)
    if values is not None:
        cond = and_(cond, labels.c.value.in_(values))
    return exists(select(labels.c.uid).where(cond))


def condition(selector: str) -> ColumnElement[bool] | None:
    """The SQL condition on `resources` for a label selector; None when it is empty."""
    conds = []
    for term in _split(selector):
        m = _TERM.match(term)
        if not m:
            raise Invalid(
                f"invalid label selector term '{term.strip()}': use key=value, key!=value, "
                "key in (a,b), key notin (a,b), key or !key"
            )
        if m["nkey"]:
            conds.append(not_(_has(m["nkey"])))
        elif m["setop"]:
            values = [v.strip() for v in m["values"].split(",") if v.strip()]
            has = _has(m["key"], values)
            conds.append(has if m["setop"] == "in" else not_(has))
        elif m["op"]:
            has = _has(m["key"], [m["value"]])
            conds.append(not_(has) if m["op"] == "!=" else has)
        else:
            conds.append(_has(m["key"]))
    return and_(*conds) if conds else None
