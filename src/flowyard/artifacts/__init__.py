"""Artifacts: files that belong to a namespace, kept in an fsspec store (local folder, S3, ...)."""

from flowyard.artifacts.store import ArtifactStore, check_path

__all__ = ["ArtifactStore", "check_path"]
