"""The SQL schema, as SQLAlchemy Core tables (the migrations in `migrations/` create it)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("uid", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("namespace", String(63), nullable=False),  # "" for cluster-scoped kinds
    Column("name", String(253), nullable=False),
    Column("api_version", String(128), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("resource_version", Integer, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("status", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("kind", "namespace", "name", name="uq_resources_kind_ns_name"),
)

labels = Table(
    "labels",
    metadata,
    Column("uid", String(36), ForeignKey("resources.uid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(317), primary_key=True),
    Column("value", String(63), nullable=False),
    Index("ix_labels_key_value", "key", "value"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(63), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("name", String(253), nullable=False),
    Column("uid", String(36), nullable=False),
    Column("type", String(16), nullable=False),
    Column("reason", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_timestamp", String(32), nullable=False),
    Column("last_timestamp", String(32), nullable=False),
    Index("ix_events_object", "namespace", "kind", "name"),
)

users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(128), nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", String(32), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(64), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("namespace", String(63), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("last_used_at", String(32), nullable=True),
    Index("ix_tokens_user", "user"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the random session id
    Column("user", String(64), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", Integer, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("namespace", String(63), primary_key=True),
    Column("user", String(64), ForeignKey("users.name", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Index("ix_members_user", "user"),
)
