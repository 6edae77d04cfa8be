"""Specification of MLP.from_sklearn: an exact conversion, attackable like any MLP."""

import numpy as np
import pytest
import sklearn.neural_network as sklearn_mlp  # the test extra installs it

import robnp
from robnp.errors import ConfigError


def fitted(n_classes, hidden=(16, 8), activation="relu", seed=0):
    X, y = robnp.make_circles(300, noise=0.2, seed=seed)
    if n_classes > 2:
        y = (np.floor((np.arctan2(X[:, 1], X[:, 0]) + np.pi) / (2 * np.pi) * n_classes)
             .astype(int) % n_classes)
    clf = sklearn_mlp.MLPClassifier(hidden_layer_sizes=hidden, activation=activation,
                                    max_iter=300, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings are not the point here
        clf.fit(X, y)
    return clf, X.astype(np.float64), y


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_probabilities_and_decisions_match_sklearn(n_classes):
    clf, X, y = fitted(n_classes)
    model = robnp.MLP.from_sklearn(clf)
    assert model.layer_sizes == (2, 16, 8, n_classes)
    np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[model.predict(X)], clf.predict(X))


def test_a_converted_classifier_is_attackable_and_matches_a_reference_step():
    clf, X, y = fitted(2)
    model = robnp.MLP.from_sklearn(clf)
    labels = np.searchsorted(clf.classes_, y)
    X_adv = robnp.fgsm(model, X, labels, 0.1)
    # FGSM by hand on sklearn's own probabilities: the loss gradient's sign by
    # central differences of -log p_y, coordinate by coordinate.
    h = 1e-6
    grad = np.zeros_like(X)
    for j in range(X.shape[1]):
        step = np.zeros(X.shape[1])
        step[j] = h
        up = -np.log(clf.predict_proba(X + step)[np.arange(len(y)), labels])
        down = -np.log(clf.predict_proba(X - step)[np.arange(len(y)), labels])
        grad[:, j] = (up - down) / (2 * h)
    clear = np.abs(grad) > 1e-6  # signs of near-zero differences are noise
    np.testing.assert_array_equal(np.sign(X_adv - X)[clear], np.sign(grad)[clear])
    evaluation = robnp.evaluate(model, X, labels, (0.0, 0.1), ["fgsm", "pgd"])
    assert evaluation.clean_acc == pytest.approx(np.mean(clf.predict(X) == y))
    assert evaluation.worst_robust_acc[1] <= evaluation.clean_acc


@pytest.mark.parametrize("make,match", [
    (lambda: fitted(2, activation="tanh")[0], "only ReLU"),
    (lambda: sklearn_mlp.MLPClassifier(), "expected a fitted"),
    (lambda: object(), "expected a fitted"),
])
def test_what_cannot_convert_exactly_is_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        robnp.MLP.from_sklearn(make())
