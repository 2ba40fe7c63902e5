"""Kubeflow Pipelines v2: the engine that runs a compiled `PipelineSpec` (`engine.py`)."""
