"""Non-finite data is refused at the Python API's one input check, and a model file
must hold finite weights; a file that is not a model is described, never unpickled."""

import numpy as np
import pytest

import robnp
from robnp.errors import DataError, ModelFileError
from robnp.model import load_model, save_model


@pytest.fixture
def model():
    return robnp.MLP(2, (6, 6), 2, seed=0)


def _points(bad_value, row=2, column=1):
    X = np.random.default_rng(0).normal(size=(5, 2))
    X[row, column] = bad_value
    return X, np.arange(5) % 2


PATHS = {
    "accuracy": lambda m, X, y: robnp.accuracy(m, X, y),
    "fgsm": lambda m, X, y: robnp.fgsm(m, X, y, 0.1),
    "pgd": lambda m, X, y: robnp.pgd(m, X, y, 0.1, steps=2),
    "input_gradient": lambda m, X, y: m.input_gradient(X, y),
    "predict": lambda m, X, y: m.predict(X),
    "fit": lambda m, X, y: robnp.fit(m, X, y, max_epochs=2),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("path", list(PATHS))
def test_non_finite_points_are_refused_naming_the_first_bad_entry(model, path, bad):
    X, y = _points(bad)
    X[4, 0] = bad  # a later bad entry: the first one is named
    before = model.params.copy()
    with pytest.raises(DataError, match=r"X\[2, 1\] \(row 2, column 1\) is -?(nan|inf)"):
        PATHS[path](model, X, y)
    assert np.array_equal(model.params, before)  # fit refused before any update


def test_a_value_that_overflows_the_model_dtype_is_refused(model):
    X, y = _points(1e300)
    with pytest.raises(DataError, match=r"X\[2, 1\].*1e\+300 overflows float32"):
        robnp.accuracy(model, X, y)
    # The same value is fine for a float64 model.
    assert 0 <= robnp.accuracy(model.astype(np.float64), X, y) <= 1


def test_finite_points_pass_unchanged(model):
    X, y = _points(0.5)
    assert np.array_equal(model.check_input(X), X.astype(np.float32))


def test_load_model_refuses_non_finite_weights(model, tmp_path):
    model.params[7] = np.nan
    save_model(model, tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="non-finite value.*must be finite"):
        load_model(tmp_path / "m.npz")


@pytest.mark.parametrize("write", [
    lambda path: path.write_text("coef_0,intercept_0\n1,2\n"),
    lambda path: path.write_bytes(b""),
    lambda path: np.save(path.open("wb"), np.array([{"a": 1}], dtype=object)),
], ids=["text file", "empty file", "pickled .npy"])
def test_a_file_that_is_not_a_model_is_described_without_pickle_advice(tmp_path, write):
    path = tmp_path / "model.npz"
    write(path)
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "pickle" not in message.lower()
    assert "expected an .npz archive written by robnp's save_model" in message
