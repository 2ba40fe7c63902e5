"""Authorisation cases of model serving's API routes (the gateway's own refusals are tested in
tests/serving/test_control.py, with a running model)."""

from __future__ import annotations

from test_authorization import ALL_MEMBERS, NS

CASES = [
    ("serving stats", "GET /api/v1/namespaces/{namespace}/servingstats", ALL_MEMBERS,
     lambda a: ("GET", f"{NS}/servingstats", None)),
]
