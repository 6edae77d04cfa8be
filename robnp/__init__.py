"""robnp: adversarial robustness of small neural networks, on NumPy and Numba.

A tour::

    import robnp
    X, y = robnp.make_circles(2000, noise=0.15, seed=42)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, test_fraction=0.2)
    model = robnp.MLP(n_features=2, hidden=(64, 64), n_classes=2, seed=42)
    history = robnp.fit(model, X_train, y_train, seed=42)
    robnp.accuracy(model, X_test, y_test)
    robnp.robust_accuracy(model, X_test, y_test, attack="pgd", eps=[0.05, 0.1])
"""

from ._version import __version__
from .attacks import fgsm, pgd
from .data import (dataset_names, make_circles, make_dataset, make_moons, make_spheres,
                   register_dataset, train_test_split)
from .errors import (ConfigError, DataError, ModelFileError, RobnpError, StoreError,
                     TrainingDivergedError)
from .evaluate import accuracy, robust_accuracy
from .gradients import input_gradient, loss_and_input_gradient, param_gradient
from .losses import LOSSES
from .model import MLP, load_model, param_count, save_model
from .optim import Adam
from .train import History, TrainConfig, fit
from . import study  # noqa: E402  (the study runner: robnp.study.run_study)

__all__ = [
    "__version__",
    "MLP", "param_count", "save_model", "load_model",
    "fit", "TrainConfig", "History", "Adam",
    "make_circles", "make_moons", "make_spheres", "make_dataset", "dataset_names",
    "register_dataset", "train_test_split",
    "input_gradient", "loss_and_input_gradient", "param_gradient", "LOSSES",
    "fgsm", "pgd", "accuracy", "robust_accuracy",
    "RobnpError", "ConfigError", "DataError", "ModelFileError", "StoreError",
    "TrainingDivergedError",
]
