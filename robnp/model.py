"""The multilayer perceptron: parameters, initialisation, prediction, save/load.

An :class:`MLP` is a list of layer sizes and one flat parameter vector; every
weight matrix and bias is a view into that vector (see :mod:`robnp.kernels` for
the layout), so an optimizer, a gradient check and a checkpoint all see one array.
Hidden layers use ReLU; the output layer gives logits.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple, Sequence

import numpy as np

from . import _checks, _memory, gradients, kernels
from ._io import atomic_write, read_npz
from ._version import __version__
from .errors import ConfigError, DataError, ModelFileError, StoreError
from .threads import single_blas_thread

__all__ = ["MLP", "param_count", "init_memory", "save_model", "load_model", "check_labels"]

_ACTIVATIONS = ("relu",)
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype, float32 or float64; a ConfigError otherwise."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be float32 or float64, got {dtype.name}")
    return dtype


def _check_activation(activation) -> str:
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    return activation


def _is_sequence(value) -> bool:
    """Something to iterate over, other than a string."""
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes))


def _check_sizes(layer_sizes) -> tuple[int, ...]:
    if not _is_sequence(layer_sizes):
        raise ConfigError(f"layer sizes must be a sequence of integers, got {layer_sizes!r}")
    sizes = tuple(layer_sizes)
    if len(sizes) < 2:
        raise ConfigError(f"an MLP needs at least an input and an output size, got {sizes}")
    if not all(_checks.is_integer(size) and size >= 1 for size in sizes):
        raise ConfigError(f"layer sizes must be integers >= 1, got {sizes}")
    if sizes[-1] < 2:
        raise ConfigError(f"n_classes must be >= 2, got {sizes[-1]}")
    return tuple(int(s) for s in sizes)


def param_count(n_features: int, hidden: Sequence[int], n_classes: int) -> int:
    """Number of weights and biases of an MLP; ``h*h + 6*h + 2`` for the study's
    net (2 inputs, two hidden layers of width h, 2 classes)."""
    sizes = (n_features, *hidden, n_classes)
    return sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))


def init_memory(layer_sizes: Sequence[int], dtype=np.float32) -> _memory.MemoryEstimate:
    """Peak bytes of ``MLP(...)``'s initialisation (see ``MLP.__init__``): every block
    drawn in float64, their float64 concatenation, and the cast to ``dtype``."""
    sizes = tuple(_memory.check_size("layer size", s) for s in layer_sizes)
    n_params = param_count(sizes[0], sizes[1:-1], sizes[-1])
    hidden = ",".join(str(s) for s in sizes[1:-1]) or "none"
    return _memory.MemoryEstimate((
        ("parameters", f"hidden={hidden}, {n_params} parameters",
         float(n_params * (8 + 8 + np.dtype(dtype).itemsize))),
        # the arrays' headers, the list of blocks, the generator
        ("array objects", f"{len(sizes) - 1} layers", float(16384 + 1024 * len(sizes))),
    ))


def check_labels(y, n_rows: int, n_classes: int) -> np.ndarray:
    """``y`` as a C-contiguous int64 vector of ``n_rows`` labels in ``[0, n_classes)``.

    Kernels index with the labels unchecked, so every public function that hands
    labels to a kernel passes them through here first. Integer-valued floats are
    accepted; anything else raises :class:`~robnp.errors.DataError`.
    """
    y = np.asarray(y)
    if y.shape != (n_rows,):
        raise DataError(f"y must have shape ({n_rows},), got {y.shape}")
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or np.any(y != np.round(y)):
            raise DataError(f"y must hold integer class labels, got dtype {y.dtype}")
    # Range first, in y's own dtype: a cast to int64 could wrap an out-of-range value.
    if n_rows and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(
            f"labels must be in [0, {n_classes - 1}], got values in [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


class Workspace(NamedTuple):
    """Scratch buffers for the kernels, sized for ``n_rows`` rows (see kernels)."""

    acts: np.ndarray
    dZ: np.ndarray
    d0: np.ndarray
    d1: np.ndarray


class MLP:
    """A ReLU multilayer perceptron classifier with a flat parameter vector.

    Parameters
    ----------
    n_features : int
        Input dimension.
    hidden : sequence of int, default (64, 64)
        Width of each hidden layer; ``(64, 64)`` is the study's 2-hidden-layer net.
        An empty sequence gives multinomial logistic regression.
    n_classes : int, default 2
    activation : {"relu"}
    dtype : float32 or float64, default float32
    seed : int, numpy.random.Generator or None
        Source of the initial weights. Initialisation follows PyTorch's
        ``nn.Linear`` default: every weight and bias uniform in
        ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, drawn layer by layer (weights, then
        bias) in float64 and cast.

    Attributes
    ----------
    layer_sizes : tuple of int
        ``(n_features, *hidden, n_classes)``.
    sizes : ndarray of shape (n_layers + 1,), int64
        ``layer_sizes`` as the array every kernel takes (read by the gradients,
        losses, attacks and training loop); never modified.
    params : ndarray of shape (n_params,)
        All parameters; ``coefs_`` and ``intercepts_`` are views into it.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 64), n_classes: int = 2,
                 *, activation: str = "relu", dtype=np.float32, seed=None):
        _check_activation(activation)
        if not _is_sequence(hidden):
            raise ConfigError(f"hidden must be a sequence of widths, got {hidden!r}")
        self.layer_sizes = _check_sizes((n_features, *hidden, n_classes))
        self.activation = activation
        self.dtype = check_dtype(dtype)
        _memory.check_fits(init_memory(self.layer_sizes, self.dtype),
                           f"MLP with layer sizes {self.layer_sizes}")
        self.sizes = np.array(self.layer_sizes, dtype=np.int64)
        try:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        except (ValueError, TypeError):
            raise ConfigError(f"seed must be an integer >= 0, a numpy Generator or None, "
                              f"got {seed!r}") from None
        blocks = []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            bound = 1.0 / np.sqrt(fan_in)
            blocks.append(rng.uniform(-bound, bound, size=fan_in * fan_out))
            blocks.append(rng.uniform(-bound, bound, size=fan_out))
        self.params = np.concatenate(blocks).astype(self.dtype)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_params(cls, layer_sizes: Sequence[int], params, *, activation: str = "relu",
                    dtype=None) -> "MLP":
        """An MLP with the given sizes whose parameters are a copy of ``params``."""
        sizes = _check_sizes(layer_sizes)
        try:
            params = np.asarray(params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"params must be a real numeric array: {exc}") from None
        if params.dtype.kind not in "iuf":
            raise ConfigError(f"params must be a real numeric array, got dtype {params.dtype}")
        if dtype is None and params.dtype not in _DTYPES:
            raise ConfigError(f"params have dtype {params.dtype}; pass dtype=float32 or "
                              f"float64 to convert them")
        dtype = check_dtype(params.dtype if dtype is None else dtype)
        expected = param_count(sizes[0], sizes[1:-1], sizes[-1])
        if params.shape != (expected,):
            raise ConfigError(
                f"params must have shape ({expected},) for layer sizes {sizes}, "
                f"got {params.shape}")
        model = cls.__new__(cls)
        _check_activation(activation)
        model.layer_sizes = sizes
        model.activation = activation
        model.dtype = dtype
        model.sizes = np.array(sizes, dtype=np.int64)
        model.params = np.array(params, dtype=dtype, order="C", copy=True)
        return model

    @classmethod
    def from_sklearn(cls, clf, *, dtype=np.float64) -> "MLP":
        """An exact copy of a fitted scikit-learn ``MLPClassifier`` with ReLU hidden layers.

        scikit-learn computes the same ``h @ W + b`` layers (``coefs_[l]`` has shape
        (fan_in, fan_out), as here). Its multiclass output layer gives softmax logits,
        kept as they are. Its binary output is one logit ``z`` with
        ``P(classes_[1]) = sigmoid(z)``; it becomes the two logits ``(0, z)``, whose
        softmax is ``(1 - sigmoid(z), sigmoid(z))``: the same probabilities and the same
        decision. Class ``k`` of the result is ``clf.classes_[k]``, so attack labels are
        indices into ``classes_`` (``np.searchsorted(clf.classes_, y)``).

        Parameters
        ----------
        clf : sklearn.neural_network.MLPClassifier, fitted
        dtype : float32 or float64, default float64 (scikit-learn's own precision)

        Raises
        ------
        ConfigError
            If ``clf`` is not a fitted single-label ``MLPClassifier`` with ReLU
            hidden layers.
        """
        coefs = getattr(clf, "coefs_", None)
        intercepts = getattr(clf, "intercepts_", None)
        if coefs is None or intercepts is None or not hasattr(clf, "classes_"):
            raise ConfigError(f"expected a fitted scikit-learn MLPClassifier, got "
                              f"{type(clf).__name__}")
        if getattr(clf, "activation", None) != "relu":
            raise ConfigError(f"only ReLU hidden layers convert exactly; this classifier's "
                              f"activation is {getattr(clf, 'activation', None)!r}")
        output = getattr(clf, "out_activation_", None)
        if output not in ("softmax", "logistic") or np.ndim(clf.classes_) != 1:
            raise ConfigError(f"only single-label classifiers convert (softmax or binary "
                              f"logistic output), got output activation {output!r}")
        weights = [np.asarray(W, dtype=np.float64) for W in coefs]
        biases = [np.asarray(b, dtype=np.float64) for b in intercepts]
        if output == "logistic":
            if weights[-1].shape[1] != 1 or len(clf.classes_) != 2:
                raise ConfigError("a logistic output layer converts only for two classes")
            weights[-1] = np.hstack([np.zeros_like(weights[-1]), weights[-1]])
            biases[-1] = np.concatenate([[0.0], biases[-1]])
        sizes = [weights[0].shape[0], *(W.shape[1] for W in weights)]
        flat = np.concatenate([block for W, b in zip(weights, biases) for block in (W.ravel(), b)])
        return cls.from_params(sizes, flat, dtype=dtype)

    def copy(self) -> "MLP":
        return MLP.from_params(self.layer_sizes, self.params, activation=self.activation)

    def astype(self, dtype) -> "MLP":
        """A copy whose parameters are in ``dtype``."""
        return MLP.from_params(self.layer_sizes, self.params, activation=self.activation,
                               dtype=dtype)

    # -- shape ------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self.layer_sizes[-1]

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.layer_sizes[1:-1]

    @property
    def n_params(self) -> int:
        return int(self.params.shape[0])

    def _blocks(self, array):
        w_off, b_off = kernels.param_offsets(self.sizes)
        coefs, intercepts = [], []
        for layer, (fan_in, fan_out) in enumerate(zip(self.layer_sizes[:-1],
                                                      self.layer_sizes[1:])):
            start = w_off[layer]
            coefs.append(array[start:start + fan_in * fan_out].reshape(fan_in, fan_out))
            intercepts.append(array[b_off[layer]:b_off[layer] + fan_out])
        return coefs, intercepts

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices, each a view of shape (fan_in, fan_out) into ``params``."""
        return self._blocks(self.params)[0]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors, each a view of shape (fan_out,) into ``params``."""
        return self._blocks(self.params)[1]

    def split_params(self, flat) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Views of a flat vector laid out like ``params`` (e.g. a gradient) as
        ``(weight blocks, bias blocks)``."""
        flat = np.asarray(flat)
        if flat.shape != self.params.shape:
            raise DataError(f"expected a vector of shape {self.params.shape}, got {flat.shape}")
        return self._blocks(flat)

    # -- boundary coercion ------------------------------------------------------------
    def check_input(self, X) -> np.ndarray:
        """``X`` as a C-contiguous array of the model's dtype, shape (n, n_features)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(
                f"X must have shape (n_samples, {self.n_features}), got {X.shape}")
        if X.shape[0] == 0:
            raise DataError("X has no rows")
        if not np.issubdtype(X.dtype, np.number):
            raise DataError(f"X must be numeric, got dtype {X.dtype}")
        original = X
        with np.errstate(over="ignore"):
            X = np.ascontiguousarray(X, dtype=self.dtype)
        # Every attack, accuracy and gradient path starts here: a NaN or infinity let
        # through would come back as NaN points and a meaningless accuracy.
        finite = np.isfinite(X)
        if not finite.all():
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            value = original[row, column]
            why = (f"is {value}" if not np.isfinite(value) else
                   f"= {value} overflows {self.dtype.name}")
            raise DataError(f"X must hold finite numbers: X[{row}, {column}] (row {row}, "
                            f"column {column}) {why}")
        return X

    def check_labels(self, y, n_rows: int) -> np.ndarray:
        """``y`` as a C-contiguous int64 vector of ``n_rows`` labels in range."""
        return check_labels(y, n_rows, self.n_classes)

    def workspace(self, n_rows: int) -> Workspace:
        """Fresh scratch buffers for kernels on ``n_rows`` rows."""
        sizes = self.layer_sizes
        return Workspace(
            acts=np.empty(n_rows * sum(sizes[1:]), self.dtype),
            dZ=np.empty((n_rows, sizes[-1]), self.dtype),
            d0=np.empty(n_rows * max(sizes), self.dtype),
            d1=np.empty(n_rows * max(sizes), self.dtype),
        )

    # -- prediction -------------------------------------------------------------------
    @single_blas_thread
    def logits(self, X) -> np.ndarray:
        """Raw scores, ndarray of shape (n_samples, n_classes), in the model's dtype."""
        X = self.check_input(X)
        ws = self.workspace(X.shape[0])
        return kernels.forward(self.params, self.sizes, X, ws.acts).copy()

    def predict_proba(self, X) -> np.ndarray:
        """Softmax probabilities, ndarray of shape (n_samples, n_classes)."""
        Z = self.logits(X)
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        return Z

    def predict(self, X) -> np.ndarray:
        """Predicted class (arg-max logit), ndarray of shape (n_samples,), int64."""
        return self.logits(X).argmax(axis=1).astype(np.int64)

    def input_gradient(self, X, y, loss: str = "cross_entropy") -> np.ndarray:
        """See :func:`robnp.gradients.input_gradient`."""
        return gradients.input_gradient(self, X, y, loss=loss)

    def __repr__(self) -> str:
        return (f"MLP(layer_sizes={self.layer_sizes}, activation={self.activation!r}, "
                f"dtype={self.dtype.name}, n_params={self.n_params})")


# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------

def save_model(model: MLP, path) -> None:
    """Write ``model`` to ``path`` as ``.npz``: ``coef_l`` of shape (fan_in, fan_out),
    ``intercept_l``, and ``meta``, a JSON string (robnp version, activation, layer
    sizes, dtype). The file is written to a temporary name and renamed into place."""
    if not isinstance(model, MLP):
        swapped = isinstance(path, MLP) and isinstance(model, (str, bytes, os.PathLike))
        raise ConfigError("save_model takes (model, path): the arguments are swapped"
                          if swapped else f"model must be an MLP, got {type(model).__name__}")
    path = _check_path(path)
    if not path.endswith(".npz"):
        path += ".npz"
    coefs, intercepts = model.coefs_, model.intercepts_
    arrays = {f"coef_{i}": c for i, c in enumerate(coefs)}
    arrays.update({f"intercept_{i}": b for i, b in enumerate(intercepts)})
    arrays["meta"] = np.array(json.dumps({
        "format": "robnp.MLP",
        "robnp_version": __version__,
        "activation": model.activation,
        "layer_sizes": list(model.layer_sizes),
        "dtype": model.dtype.name,
    }))
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays), suffix=".tmp.npz")
    except StoreError as exc:
        raise ModelFileError(str(exc)) from None


def _check_path(path) -> str:
    """``path`` as a string; a one-line error unless it is a file path."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ConfigError(f"path must be a file path (str or os.PathLike), got "
                          f"{type(path).__name__}")
    path = os.fspath(path)
    return os.fsdecode(path) if isinstance(path, bytes) else path


def load_model(path) -> MLP:
    """Read a model written by :func:`save_model`. Never unpickles; a missing,
    truncated or inconsistent file raises :class:`~robnp.errors.ModelFileError`."""
    path = _check_path(path)
    files = read_npz(path, "model", "save_model")
    if "meta" not in files:
        raise ModelFileError(f"{path} is not a robnp model: no 'meta' entry")
    try:
        meta = json.loads(str(files["meta"]))
        sizes = _check_sizes(meta["layer_sizes"])
        activation = meta["activation"]
        dtype = check_dtype(meta["dtype"])
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise ModelFileError(f"{path}: unreadable or invalid meta data ({exc})") from None
    blocks = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape in ((f"coef_{layer}", (fan_in, fan_out)),
                            (f"intercept_{layer}", (fan_out,))):
            if name not in files:
                raise ModelFileError(f"{path}: missing array {name!r}")
            if files[name].dtype.kind not in "iuf":
                raise ModelFileError(f"{path}: array {name!r} must be real numbers, "
                                     f"got dtype {files[name].dtype}")
            if files[name].shape != shape:
                raise ModelFileError(
                    f"{path}: array {name!r} has shape {files[name].shape}, "
                    f"expected {shape} for layer sizes {sizes}")
            finite = np.isfinite(files[name])
            if not finite.all():
                where = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ModelFileError(
                    f"{path}: array {name!r} holds a non-finite value "
                    f"({files[name][where]} at index {where}); a model's parameters "
                    f"must be finite numbers")
            blocks.append(files[name].ravel())
    extra = set(files) - {"meta"} - {f"{kind}_{i}" for i in range(len(sizes) - 1)
                                      for kind in ("coef", "intercept")}
    if extra:
        raise ModelFileError(f"{path}: unexpected arrays {sorted(extra)}")
    try:
        return MLP.from_params(sizes, np.concatenate(blocks), activation=activation,
                               dtype=dtype)
    except ConfigError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
