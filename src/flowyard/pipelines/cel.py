"""The subset of CEL that kfp compiles into `triggerPolicy.condition` and `parameterExpressionSelector`.

kfp emits, for `dsl.If/Elif/Else`, expressions such as
`!(int(inputs.parameter_values['pipelinechannel--n']) > 2) && inputs.parameter_values['x'] == 'tails'`
and, for loop items that are structs, `parseJson(string_value)["a"]`. Supported here:
literals (numbers, quoted strings, true/false/null), names, `a.b`, `a['k']` / `a[0]`, calls of
`int`, `double`, `string`, `bool`, `parseJson`, `size`, unary `!`/`-`, `* / %`, `+ -`,
comparisons, `in`, `&&`, `||` and `?:`. Anything else raises `CelError` with a message.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["CelError", "evaluate"]


class CelError(ValueError):
    """The expression cannot be parsed or evaluated."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|\.\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!().\[\],?:])
)""", re.X)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CelError(f"cannot parse condition at {text[pos:pos + 20]!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _unquote(s: str) -> str:
    body = s[1:-1]
    return json.loads('"' + body.replace('\\\'', "'").replace('"', '\\"') + '"') if "\\" in body else body


def _to_int(v: Any) -> int:
    if isinstance(v, str):
        v = float(v) if re.search(r"[.eE]", v) else int(v)
    return int(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise CelError(f"cannot convert {v!r} to bool")
    return bool(v)


def _to_string(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _parse_json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


_FUNCS = {"int": _to_int, "double": lambda v: float(v), "string": _to_string, "bool": _to_bool,
          "parseJson": _parse_json, "size": len, "dyn": lambda v: v}


class _Parser:
    def __init__(self, text: str, env: dict[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.env = env
        self.text = text

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise CelError(f"unexpected end of condition {self.text!r}")
        tok = self.toks[self.i]
        if want is not None and tok[1] != want:
            raise CelError(f"expected {want!r} but found {tok[1]!r} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.ternary()
        if self.i != len(self.toks):
            raise CelError(f"unexpected {self.peek()!r} in {self.text!r}")
        return value

    def ternary(self) -> Any:
        cond = self.or_()
        if self.peek() == "?":
            self.take()
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return a if _to_bool(cond) else b
        return cond

    def or_(self) -> Any:
        v = self.and_()
        while self.peek() == "||":
            self.take()
            w = self.and_()
            v = _to_bool(v) or _to_bool(w)
        return v

    def and_(self) -> Any:
        v = self.cmp()
        while self.peek() == "&&":
            self.take()
            w = self.cmp()
            v = _to_bool(v) and _to_bool(w)
        return v

    def cmp(self) -> Any:
        v = self.add()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">=", "in"):
            op = self.take()[1]
            w = self.add()
            v = _compare(op, v, w)
        return v

    def add(self) -> Any:
        v = self.mul()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            w = self.mul()
            v = v + w if op == "+" else v - w
        return v

    def mul(self) -> Any:
        v = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()[1]
            w = self.unary()
            if op == "*":
                v = v * w
            elif op == "/":
                v = v // w if isinstance(v, int) and isinstance(w, int) else v / w
            else:
                v = v % w
        return v

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not _to_bool(self.unary())
        if self.peek() == "-":
            self.take()
            return -self.unary()
        return self.postfix()

    def postfix(self) -> Any:
        v = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                key = self.take()[1]
                v = _index(v, key)
            else:
                key = self.ternary()
                self.take("]")
                v = _index(v, key)
        return v

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "num":
            return float(text) if re.search(r"[.eE]", text) else int(text)
        if kind == "str":
            return _unquote(text)
        if text == "(":
            v = self.ternary()
            self.take(")")
            return v
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.ternary())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return items
        if kind == "name":
            if text in ("true", "false"):
                return text == "true"
            if text == "null":
                return None
            if self.peek() == "(":
                self.take()
                args = []
                while self.peek() != ")":
                    args.append(self.ternary())
                    if self.peek() == ",":
                        self.take()
                self.take(")")
                if text not in _FUNCS:
                    raise CelError(f"unsupported function {text}() in {self.text!r}")
                try:
                    return _FUNCS[text](*args)
                except (TypeError, ValueError) as e:
                    raise CelError(f"{text}() failed in {self.text!r}: {e}") from None
            if text not in self.env:
                raise CelError(f"unknown name {text!r} in {self.text!r}")
            return self.env[text]
        raise CelError(f"unexpected {text!r} in {self.text!r}")


def _index(v: Any, key: Any) -> Any:
    try:
        if isinstance(v, list):
            return v[int(key)]
        return v[key]
    except (KeyError, IndexError, TypeError, ValueError):
        raise CelError(f"no key {key!r} in {_to_string(v)[:80]}") from None


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "in":
        return a in b
    # CEL compares a string with a bool literal by its text form; kfp bools arrive as bools.
    if isinstance(a, bool) != isinstance(b, bool) and (isinstance(a, str) or isinstance(b, str)):
        a, b = _to_string(a), _to_string(b)
    try:
        return {"==": a == b, "!=": a != b}[op] if op in ("==", "!=") else {
            "<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}[op]()
    except TypeError:
        raise CelError(f"cannot compare {a!r} {op} {b!r}") from None


def evaluate(expression: str, env: dict[str, Any]) -> Any:
    """Evaluate `expression` with the names in `env` (e.g. `inputs`, `string_value`)."""
    return _Parser(expression, env).parse()
