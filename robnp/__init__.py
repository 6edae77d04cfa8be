"""robnp: adversarial robustness of small neural networks, on NumPy and Numba.

A tour::

    import robnp
    X, y = robnp.make_circles(2000, noise=0.15, seed=42)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, test_fraction=0.2)
    model = robnp.MLP(n_features=2, hidden=(64, 64), n_classes=2, seed=42)
    history = robnp.fit(model, X_train, y_train, seed=42)
    robnp.accuracy(model, X_test, y_test)
    robnp.robust_accuracy(model, X_test, y_test, attack="pgd", eps=[0.05, 0.1])

Names are loaded on first use, so that parts which do not need Numba (the
scaling-law analysis, ``robnp --help``) start without compiling or importing it.
"""

import importlib

from ._version import __version__
from .errors import (ConfigError, DataError, ModelFileError, RobnpError, StoreError,
                     TrainingDivergedError)

# public name -> module that defines it
_EXPORTS = {
    "MLP": "model", "param_count": "model", "save_model": "model", "load_model": "model",
    "fit": "training.fit", "TrainConfig": "training.config", "History": "training.fit",
    "fit_stream": "training.stream", "SampleStream": "training.stream",
    "recipe_names": "training.recipes", "get_recipe": "training.recipes",
    "Adam": "training.optim", "AdamW": "training.optim", "SGD": "training.optim",
    "make_circles": "data", "make_moons": "data", "make_spheres": "data",
    "make_dataset": "data", "dataset_names": "data", "register_dataset": "data",
    "train_test_split": "data",
    "input_gradient": "gradients", "loss_and_input_gradient": "gradients",
    "param_gradient": "gradients", "LOSSES": "losses",
    "fgsm": "attacks", "pgd": "attacks", "apgd": "attacks", "square": "attacks",
    "accuracy": "attacks", "robust_accuracy": "attacks", "attack_names": "attacks",
    "evaluate": "attacks", "Evaluation": "attacks",
    "get_attack": "attacks",
}
_SUBPACKAGES = ("attacks", "data", "report", "study", "scaling", "training", "verify")

__all__ = ["__version__", *_EXPORTS, *_SUBPACKAGES,
           "RobnpError", "ConfigError", "DataError", "ModelFileError", "StoreError",
           "TrainingDivergedError"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'robnp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
