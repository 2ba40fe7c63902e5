"""Shared fixtures: real Flowyard servers on free loopback ports, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fyserver import ADMIN_PASSWORD, Server, make_server, require  # noqa: F401  (re-exported)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default=os.environ.get("FLOWYARD_TEST_DB", "sqlite"), choices=["sqlite", "postgresql"])


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A fresh server for one test."""
    yield from make_server(tmp_path, request)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server for a whole test module (tests must not depend on each other's leftovers)."""
    yield from make_server(tmp_path_factory.mktemp("srv"), request)

