"""Named Python environments (virtualenvs cached by content), the local analogue of images."""

from flowyard.environments.builder import (
    EnvironmentBuildError,
    EnvironmentBuilder,
    normalize_requirements,
)

__all__ = ["EnvironmentBuildError", "EnvironmentBuilder", "normalize_requirements"]
