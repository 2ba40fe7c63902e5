"""The tracking tables (migration 0002): runs known to tracking, metric points, latest metric
per run and key (the compare view's values), parameters, tags, and the metric and param names
used in each experiment (the compare view's columns, without scanning every run's rows)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from flowyard.store.tables import metadata

tracking_runs = Table(
    "tracking_runs",
    metadata,
    Column("uid", String(36), primary_key=True),  # the Run/Trial resource uid, or our own for notebook runs
    Column("namespace", String(63), nullable=False),
    Column("experiment", String(253), nullable=False),  # experiment uid (KFP) or name; "" for none
    Column("name", String(253), nullable=False),
    Column("source", String(32), nullable=False),  # Run, Trial, ... or Notebook (our own record)
    Column("state", String(16), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=True),
    Index("ix_tracking_runs_experiment", "namespace", "experiment", "created_at"),
)

metric_points = Table(
    "metric_points",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_uid", String(36), ForeignKey("tracking_runs.uid", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),  # milliseconds since the epoch
    Index("ix_metric_points_run_key_step", "run_uid", "key", "step"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_uid", String(36), ForeignKey("tracking_runs.uid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_uid", String(36), ForeignKey("tracking_runs.uid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Column("num", Float, nullable=True),  # the value as a number when it is one, for `params.lr < 0.1`
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_uid", String(36), ForeignKey("tracking_runs.uid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

tracking_keys = Table(
    "tracking_keys",
    metadata,
    Column("namespace", String(63), primary_key=True),
    Column("experiment", String(253), primary_key=True),
    Column("kind", String(8), primary_key=True),  # metric or param
    Column("key", String(250), primary_key=True),
)
