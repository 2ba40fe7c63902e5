"""Flowyard: an MLOps platform in one process."""
__version__ = "0.1.0"
