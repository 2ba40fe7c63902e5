"""The tuning kinds: Katib's `Experiment` and `Trial` (`kubeflow.org/v1beta1`).

KFP already owns the kind name `Experiment` (`pipelines.kubeflow.org`, plural `experiments`),
so Katib's is registered as `TuningExperiment` (plural `tuningexperiments`, also
`experiments.kubeflow.org`) with `api_kind="Experiment"`: a Katib manifest applies verbatim
and every object comes back as Katib wrote it. Trials are made by their experiment's
controller only.
"""

from __future__ import annotations

from typing import Any

from flowyard.errors import Invalid
from flowyard.kinds import Kind, Manifest, register
from flowyard.tuning.spec import experiment_spec

API_VERSION = "kubeflow.org/v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
"""Label on every Trial naming its experiment (as Katib sets it)."""


def _as_katib(manifest: Manifest) -> Manifest:
    return {**manifest, "kind": "Experiment"}


def _trial_spec(manifest: Manifest, old: Manifest | None) -> dict[str, Any]:
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise Invalid("spec must be an object")
    if old is not None and spec != old["spec"]:
        raise Invalid("a trial's spec cannot change")
    return spec


def _no_direct_trials(_p: Any, _ns: str, _m: Manifest) -> None:
    raise Invalid("trials are made by their experiment: apply an Experiment (apiVersion: kubeflow.org/v1beta1, "
                  "kind: Experiment) instead")


EXPERIMENT = register(Kind("TuningExperiment", (API_VERSION,), spec_from=experiment_spec, present=_as_katib,
                           api_kind="Experiment"))
TRIAL = register(Kind("Trial", (API_VERSION,), spec_from=_trial_spec, admit=_no_direct_trials))
