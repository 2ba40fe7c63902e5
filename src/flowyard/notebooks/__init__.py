"""Notebook servers: per-user JupyterLab, started through the executor, reached only through the gateway."""
