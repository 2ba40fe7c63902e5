"""Hyperparameter tuning: Katib `v1beta1` Experiments, searched with Optuna, trials on the executor.

`kinds.py` declares the kinds (`Experiment` of `kubeflow.org/v1beta1`, stored as
`TuningExperiment` next to KFP's `Experiment`, and `Trial`), `spec.py` validates and defaults
a Katib spec, `algorithms.py` maps Katib's algorithm names onto Optuna samplers and pruners
and rebuilds a study from stored trials, `metrics.py` collects metrics, `trials.py` runs one
trial as a workload, and `controller.py` reconciles an experiment. `sdk.py` holds
`flowyard.tune` and `search.py` Katib-style parameter helpers; neither imports the server.
"""
