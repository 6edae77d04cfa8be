"""The MLP: sizes, initialisation, prediction, save/load."""

import json

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError, DataError, ModelFileError


@pytest.mark.parametrize("h", [16, 32, 64, 128, 256, 512, 1, 7])
def test_parameter_count_of_the_study_net(h):
    model = robnp.MLP(2, (h, h), 2, seed=0)
    assert model.n_params == h * h + 6 * h + 2 == robnp.param_count(2, (h, h), 2)


def test_initialisation_is_pytorch_uniform_per_layer():
    model = robnp.MLP(3, (400, 50), 2, dtype=np.float64, seed=0)
    for W, b in zip(model.coefs_, model.intercepts_):
        bound = 1 / np.sqrt(W.shape[0])
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
        # uniform on [-bound, bound]: standard deviation bound / sqrt(3)
        assert W.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)
    assert model.coefs_[0].shape == (3, 400) and model.coefs_[1].shape == (400, 50)


def test_seeded_initialisation_is_reproducible():
    a = robnp.MLP(2, (8, 8), 2, seed=42)
    b = robnp.MLP(2, (8, 8), 2, seed=42)
    c = robnp.MLP(2, (8, 8), 2, seed=43)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_views_share_memory_with_the_flat_vector():
    model = robnp.MLP(2, (4,), 3, dtype=np.float64, seed=0)
    model.coefs_[1][2, 1] = 123.0
    assert 123.0 in model.params
    model.params[:] = 0
    assert model.intercepts_[0].sum() == 0


def test_predict_and_probabilities(trained_model, circles_split):
    X_test = circles_split[1]
    P = trained_model.predict_proba(X_test)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(trained_model.predict(X_test), P.argmax(axis=1))
    assert trained_model.predict(X_test).dtype == np.int64


def test_save_and_load_roundtrip(tmp_path, trained_model):
    path = tmp_path / "model.npz"
    robnp.save_model(trained_model, path)
    loaded = robnp.load_model(path)
    assert loaded.layer_sizes == trained_model.layer_sizes
    assert loaded.dtype == trained_model.dtype
    np.testing.assert_array_equal(loaded.params, trained_model.params)
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        assert archive["coef_0"].shape == (2, 32)
        assert archive["intercept_2"].shape == (2,)
    assert meta["layer_sizes"] == [2, 32, 32, 2] and meta["robnp_version"] == robnp.__version__


def test_load_errors(tmp_path, trained_model):
    with pytest.raises(ModelFileError, match="not found"):
        robnp.load_model(tmp_path / "missing.npz")
    path = tmp_path / "m.npz"
    robnp.save_model(trained_model, path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        robnp.load_model(tmp_path / "cut.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["coef_1"] = arrays["coef_1"][:, :5]
    np.savez(tmp_path / "bad_shape.npz", **arrays)
    with pytest.raises(ModelFileError, match="coef_1"):
        robnp.load_model(tmp_path / "bad_shape.npz")
    del arrays["meta"]
    np.savez(tmp_path / "no_meta.npz", **arrays)
    with pytest.raises(ModelFileError, match="meta"):
        robnp.load_model(tmp_path / "no_meta.npz")
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError):
        robnp.load_model(tmp_path / "pickled.npz")


@pytest.mark.parametrize("kwargs,error", [
    ({"n_features": 0}, ConfigError), ({"hidden": (4, -1)}, ConfigError),
    ({"n_classes": 1}, ConfigError), ({"dtype": np.int32}, ConfigError),
    ({"activation": "tanh"}, ConfigError),
])
def test_bad_model_arguments(kwargs, error):
    args = {"n_features": 2, "hidden": (4,), "n_classes": 2} | kwargs
    with pytest.raises(error):
        robnp.MLP(**args)


def test_bad_inputs_are_named(trained_model):
    with pytest.raises(DataError, match=r"shape \(n_samples, 2\)"):
        trained_model.logits(np.ones((3, 5)))
    with pytest.raises(DataError, match="labels must be in"):
        robnp.input_gradient(trained_model, np.ones((3, 2)), [0, 1, 2])
    with pytest.raises(DataError, match="y must have shape"):
        robnp.input_gradient(trained_model, np.ones((3, 2)), [0, 1])


def test_a_file_that_is_not_an_npz_archive_is_a_model_file_error(tmp_path, trained_model):
    np.save(tmp_path / "params.npy", trained_model.params)
    with pytest.raises(ModelFileError, match="expected an .npz archive"):
        robnp.load_model(tmp_path / "params.npy")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        robnp.load_model(tmp_path / "notes.txt")
    with pytest.raises(ModelFileError):
        robnp.load_model(tmp_path)


def test_a_model_file_with_complex_weights_is_refused(tmp_path, trained_model):
    path = tmp_path / "m.npz"
    robnp.save_model(trained_model, path)
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["coef_0"] = arrays["coef_0"] + 1j
    np.savez(tmp_path / "complex.npz", **arrays)
    with pytest.raises(ModelFileError, match="'coef_0' must be real numbers, got dtype complex"):
        robnp.load_model(tmp_path / "complex.npz")


@pytest.mark.parametrize("params,dtype,message", [
    (np.zeros(12, complex), None, "real numeric array, got dtype complex128"),
    (np.zeros(12, complex), np.float32, "real numeric array, got dtype complex128"),
    (np.array(["1"] * 12), np.float64, "real numeric array, got dtype <U1"),
    (np.zeros(12, object), None, "real numeric array, got dtype object"),
    (np.zeros(12, bool), np.float32, "real numeric array, got dtype bool"),
    ([[1.0, 2.0], [3.0]], None, "real numeric array"),
    (np.zeros(12, np.int64), None, "pass dtype=float32 or float64"),
    (np.zeros(12, np.float32), np.int32, "dtype must be float32 or float64"),
    (np.zeros(8), None, r"params must have shape \(12,\)"),
])
def test_from_params_refuses_what_is_not_a_real_parameter_vector(params, dtype, message):
    with pytest.raises(ConfigError, match=message):
        robnp.MLP.from_params((2, 2, 2), params, dtype=dtype)


def test_from_params_converts_integers_when_asked():
    model = robnp.MLP.from_params((2, 2, 2), np.arange(12), dtype=np.float64)
    assert model.dtype == np.float64 and model.params[-1] == 11.0


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden": 8}, "hidden must be a sequence"), ({"seed": "x"}, "seed must be"),
    ({"seed": -1}, "seed must be"), ({"n_features": "2"}, "layer sizes"),
])
def test_constructor_arguments_of_the_wrong_type(kwargs, message):
    args = {"n_features": 2, "hidden": (4,), "n_classes": 2} | kwargs
    with pytest.raises(ConfigError, match=message):
        robnp.MLP(**args)


def test_save_model_names_swapped_arguments(tmp_path, trained_model):
    with pytest.raises(ConfigError, match=r"save_model takes \(model, path\): the arguments "
                                          r"are swapped"):
        robnp.save_model(str(tmp_path / "abc"), trained_model)
    with pytest.raises(ConfigError, match="model must be an MLP, got dict"):
        robnp.save_model({}, tmp_path / "abc.npz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", [None, 3, ["m.npz"]])
def test_load_model_refuses_what_is_not_a_path(path):
    with pytest.raises(ConfigError, match=f"path must be a file path .*got {type(path).__name__}"):
        robnp.load_model(path)


def test_save_model_refuses_what_is_not_a_path(trained_model):
    with pytest.raises(ConfigError, match="path must be a file path .*got NoneType"):
        robnp.save_model(trained_model, None)
