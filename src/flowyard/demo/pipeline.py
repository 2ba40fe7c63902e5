"""The MNIST pipeline, written with `kfp.dsl` as a Kubeflow user would write it.

load → train → evaluate (accuracy and a confusion matrix as KFP metrics artifacts) →
register (a model version aliased `production`) → deploy (the InferenceService `mnist`
from `models:/mnist/production`). Each component calls `flowyard.demo.steps`.
(No `from __future__ import annotations` here: kfp reads the annotations as types.)
"""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

IMAGE = "python:3.11"
"""Kubeflow would pull it; Flowyard runs the steps in its own interpreter (no environment has this name)."""


@dsl.component(base_image=IMAGE)
def load_digits(data: str, train_set: Output[Dataset], test_set: Output[Dataset]):
    from flowyard.demo import steps

    info = steps.load(data, train_set.path, test_set.path)
    for art in (train_set, test_set):
        art.metadata.update({"source": info["source"], "side": info["side"]})
    train_set.metadata["rows"], test_set.metadata["rows"] = info["train"], info["test"]


@dsl.component(base_image=IMAGE)
def train(train_set: Input[Dataset], framework: str, hidden: int, alpha: float, epochs: int,
          model: Output[Model]) -> int:
    from flowyard.demo import steps

    info = steps.train(train_set.path, model.path, framework, hidden, alpha, epochs)
    model.metadata.update({"framework": framework, "hidden": hidden, "alpha": alpha, "epochs": epochs})
    return info["features"]


@dsl.component(base_image=IMAGE)
def evaluate(test_set: Input[Dataset], model: Input[Model], framework: str, metrics: Output[Metrics],
             confusion: Output[ClassificationMetrics]) -> float:
    from flowyard.demo import steps

    accuracy, matrix = steps.evaluate(test_set.path, model.path, framework)
    metrics.log_metric("accuracy", accuracy)
    confusion.log_confusion_matrix([str(d) for d in range(10)], matrix)
    return accuracy


@dsl.component(base_image=IMAGE)
def register(accuracy: float, framework: str, features: int) -> int:
    from flowyard.demo import steps

    return steps.register(accuracy, framework, features)


@dsl.component(base_image=IMAGE)
def deploy(version: int, framework: str) -> str:
    from flowyard.demo import steps

    print(f"deploying version {version}")
    return steps.deploy(framework)


@dsl.pipeline(name="mnist", description="Train, evaluate, register and serve an MNIST digit classifier.")
def mnist(data: str = "", framework: str = "sklearn", hidden: int = 128, alpha: float = 0.0001, epochs: int = 20):
    digits = load_digits(data=data)
    trained = train(train_set=digits.outputs["train_set"], framework=framework, hidden=hidden, alpha=alpha,
                    epochs=epochs)
    scored = evaluate(test_set=digits.outputs["test_set"], model=trained.outputs["model"], framework=framework)
    version = register(accuracy=scored.outputs["Output"], framework=framework, features=trained.outputs["Output"])
    served = deploy(version=version.output, framework=framework)
    for task in (version, served):  # side effects on the registry and the endpoint: always run
        task.set_caching_options(False)
