"""Experiment tracking: metrics, parameters and tags of runs, and comparing runs.

A run is anything with a uid that logs: a KFP `Run`, a tuning `Trial`, or a run started from
a notebook or script (`flowyard.start_run`, kept only in `tracking_runs`, never executed).
`store.py` writes and reads the rows, `query.py` compiles the filter grammar of the compare
view to SQL, `api.py` is the REST surface and `client.py` the batched SDK logger.
"""
