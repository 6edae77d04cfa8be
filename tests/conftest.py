import numpy as np
import pytest

import robnp


@pytest.fixture(scope="session")
def circles_split():
    X, y = robnp.make_circles(600, noise=0.1, seed=3)
    return robnp.train_test_split(X, y, test_fraction=0.25)


@pytest.fixture(scope="session")
def trained_model(circles_split):
    """A small float32 model trained on circles (well above chance)."""
    X_train, X_test, y_train, y_test = circles_split
    model = robnp.MLP(2, (32, 32), 2, seed=5)
    robnp.fit(model, X_train, y_train, max_epochs=300, seed=5)
    assert robnp.accuracy(model, X_test, y_test) > 0.9
    return model


def reference_forward(model, X):
    """Slow, obvious NumPy forward pass in float64: per-layer activations and logits."""
    A = np.asarray(X, dtype=np.float64)
    activations = [A]
    coefs, intercepts = model.coefs_, model.intercepts_
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        Z = A @ W.astype(np.float64) + b.astype(np.float64)
        A = np.maximum(Z, 0) if layer < len(coefs) - 1 else Z
        activations.append(A)
    return activations


@pytest.fixture
def no_figures(monkeypatch):
    """Skip drawing figures in sweep tests about something else (matplotlib is slow)."""
    import robnp.report.document

    monkeypatch.setattr(robnp.report.document, "write_figures", lambda document, out_dir: [])
