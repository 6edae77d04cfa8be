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


@pytest.fixture
def no_figures(monkeypatch):
    """Skip drawing figures in sweep tests about something else (matplotlib is slow)."""
    import robnp.report.document

    monkeypatch.setattr(robnp.report.document, "write_figures", lambda document, out_dir: [])


def make_blobs(n, n_classes, n_features, seed):
    """Gaussian blobs around random centres: a small multi-class problem."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_features)) * 1.5
    y = rng.integers(0, n_classes, n)
    X = centers[y] + rng.normal(size=(n, n_features)) * 0.6
    return X.astype(np.float32), y


@pytest.fixture(scope="session")
def blobs_model():
    """A float64 MLP on 5-class blobs in 4 dimensions, and 60 test points."""
    X, y = make_blobs(460, 5, 4, seed=7)
    model = robnp.MLP(4, (12, 12), 5, dtype=np.float64, seed=7)
    robnp.fit(model, X[:400], y[:400], max_epochs=60, seed=7)
    return model, X[400:].astype(np.float64), y[400:]
