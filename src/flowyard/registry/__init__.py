"""The model registry: `RegisteredModel` and `ModelVersion` resources, aliases that move
atomically, and `resolve_model_uri` for serving's `models:/<name>/<version-or-alias>`."""

from flowyard.registry.models import resolve_model_uri

__all__ = ["resolve_model_uri"]
