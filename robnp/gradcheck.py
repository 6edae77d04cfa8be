"""Finite-difference checks of the analytic gradients.

Every weight block, every bias block and the input gradient are compared with
central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` in float64. The error of
a block is ``||g_analytic - g_numeric|| / max(||g_analytic||, ||g_numeric||)``
(Euclidean norms over the block), which stays meaningful when single entries are
tiny. ReLU networks are not differentiable where a pre-activation is 0, so the
inputs are drawn to keep every pre-activation at least ``kink_margin`` away from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .errors import ConfigError
from .gradients import loss_and_input_gradient, param_gradient
from .losses import loss_code
from .limits import check_fits, gradcheck_memory
from .model import MLP, _check_sizes, _is_sequence

__all__ = ["BlockCheck", "GradCheckReport", "check_model_gradients", "check_gradients",
           "sample_away_from_kinks", "relative_error"]


@dataclass(frozen=True)
class BlockCheck:
    """Result of comparing one gradient block with finite differences."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    rel_error: float
    passed: bool
    #: Both gradients are exactly zero (dead units, say): the block agrees, but the
    #: check says nothing about its backward pass.
    vacuous: bool = False


@dataclass(frozen=True)
class GradCheckReport:
    """All block checks of one model and batch."""

    layer_sizes: tuple[int, ...]
    n_samples: int
    loss: str
    tol: float
    blocks: tuple[BlockCheck, ...]

    @property
    def passed(self) -> bool:
        return all(block.passed for block in self.blocks)

    @property
    def worst(self) -> BlockCheck:
        return max(self.blocks, key=lambda block: block.rel_error)

    @property
    def vacuous(self) -> tuple[str, ...]:
        """Names of the blocks whose check was vacuous (both gradients zero)."""
        return tuple(block.name for block in self.blocks if block.vacuous)


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / max(||a||, ||n||)``; the absolute error when both are ~0."""
    diff = float(np.linalg.norm(np.ravel(analytic) - np.ravel(numeric)))
    scale = max(float(np.linalg.norm(analytic)), float(np.linalg.norm(numeric)))
    return diff / scale if scale > 1e-12 else diff


def _mean_loss64(model: MLP, X: np.ndarray, y: np.ndarray, code: int, acts, out) -> float:
    kernels.per_example_loss(model.params, model.sizes, X, y, code, acts, out)
    return float(out.mean())


def _pre_activations(model: MLP, X: np.ndarray) -> list[np.ndarray]:
    """Pre-activations of every hidden layer (a plain NumPy forward pass)."""
    A = np.asarray(X, dtype=np.float64)
    out = []
    for W, b in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        Z = A @ W + b
        out.append(Z)
        A = np.maximum(Z, 0)
    return out


def _sorted_gap(model: MLP, X: np.ndarray) -> np.ndarray:
    """Smallest distance between two logits of a row (where DLR's sort has a kink)."""
    Z = np.sort(model.logits(X).astype(np.float64), axis=1)
    return np.diff(Z, axis=1).min(axis=1)


def _logit_gap(model: MLP, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance from a tie among the wrong classes (where the CW margin has a kink)."""
    Z = model.logits(X).astype(np.float64)
    Z[np.arange(len(y)), y] = -np.inf
    top2 = np.sort(Z, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] if Z.shape[1] > 2 else np.full(len(y), np.inf)


def sample_away_from_kinks(model: MLP, n_samples: int, rng: np.random.Generator,
                           kink_margin: float = 1e-3, loss: str = "cross_entropy",
                           max_draws: int = 10_000):
    """Draw standard-normal inputs and labels whose every hidden pre-activation is
    at least ``kink_margin`` from 0 (and, for the CW margin, whose wrong-class
    logits are at least that far from a tie; for DLR, whose logits are all at least
    that far apart and whose label is not the third most likely class, where DLR is
    constant).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int64
    """
    rows, labels = [], []
    drawn = 0
    while len(rows) < n_samples:
        if drawn >= max_draws:
            raise ConfigError(
                f"could not find {n_samples} inputs at least {kink_margin} away from "
                f"every ReLU kink in {max_draws} draws; lower kink_margin")
        X = rng.standard_normal((n_samples, model.n_features))
        y = rng.integers(0, model.n_classes, n_samples)
        drawn += n_samples
        ok = np.ones(n_samples, bool)
        for Z in _pre_activations(model, X):
            ok &= np.abs(Z).min(axis=1) >= kink_margin
        if loss == "cw_margin":
            ok &= _logit_gap(model.astype(np.float64), X, y) >= kink_margin
        if loss == "dlr":
            ok &= _sorted_gap(model.astype(np.float64), X) >= kink_margin
            # with the label third, DLR is -(z_3 - z_1) / (z_1 - z_3) = 1: flat, and a
            # relative error of a zero gradient means nothing
            Z = model.astype(np.float64).logits(X)
            ok &= (Z > Z[np.arange(len(y)), y][:, None]).sum(axis=1) != 2
        rows.extend(X[ok])
        labels.extend(y[ok])
    return np.array(rows[:n_samples]), np.array(labels[:n_samples], dtype=np.int64)


@single_blas_thread
def _central_differences(array: np.ndarray, loss_at, h: float) -> np.ndarray:
    """``(f(a + h e_i) - f(a - h e_i)) / 2h`` for every entry of ``array``, which
    ``loss_at()`` reads; each entry is restored after use."""
    numeric = np.empty_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + h
        up = loss_at()
        array[index] = saved - h
        down = loss_at()
        array[index] = saved
        numeric[index] = (up - down) / (2 * h)
    return numeric


def check_model_gradients(model: MLP, X, y, *, loss: str = "cross_entropy", h: float = 1e-6,
                          tol: float = 1e-6) -> GradCheckReport:
    """Compare every analytic gradient block of ``model`` on ``(X, y)`` with central
    finite differences, in float64 (a float32 model is checked through a float64
    copy)."""
    model = model.astype(np.float64)
    code = loss_code(loss)
    X = model.check_input(X).copy()  # perturbed in place below
    y = model.check_labels(y, X.shape[0])
    acts = model.workspace(X.shape[0]).acts
    per_row = np.empty(X.shape[0], np.float64)

    def loss_at() -> float:
        return _mean_loss64(model, X, y, code, acts, per_row)

    _, grad = param_gradient(model, X, y, loss=loss)
    numeric = _central_differences(model.params, loss_at, h)
    _, dL_dX = loss_and_input_gradient(model, X, y, loss=loss)
    numeric_dX = _central_differences(X, loss_at, h)

    analytic_w, analytic_b = model.split_params(grad)
    numeric_w, numeric_b = model.split_params(numeric)
    pairs = []
    for layer in range(len(analytic_w)):
        pairs.append((f"W{layer + 1}", analytic_w[layer], numeric_w[layer]))
        pairs.append((f"b{layer + 1}", analytic_b[layer], numeric_b[layer]))
    pairs.append(("input", dL_dX, numeric_dX))
    blocks = []
    for name, analytic, numerical in pairs:
        rel = relative_error(analytic, numerical)
        vacuous = not np.any(analytic) and not np.any(numerical)
        blocks.append(BlockCheck(name, tuple(analytic.shape),
                                 float(np.max(np.abs(analytic - numerical))), rel, rel <= tol,
                                 vacuous))
    return GradCheckReport(model.layer_sizes, X.shape[0], loss, tol, tuple(blocks))


def check_gradients(hidden: Sequence[int] = (17, 17), n_features: int = 2, n_classes: int = 3,
                    n_samples: int = 33, *, loss: str = "cross_entropy", seed: int = 0,
                    h: float = 1e-6, tol: float = 1e-6,
                    kink_margin: float = 1e-3) -> GradCheckReport:
    """Build a float64 MLP and a batch kept away from ReLU kinks, then run
    :func:`check_model_gradients` on it."""
    if not (np.isfinite(h) and h > 0):
        raise ConfigError(f"h must be a finite number > 0, got {h!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ConfigError(f"tol must be a finite number > 0, got {tol!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 1:
        raise ConfigError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    loss_code(loss)
    # Refuse what cannot fit before allocating any of it (sizes checked as MLP does).
    if not _is_sequence(hidden):
        raise ConfigError(f"hidden must be a sequence of widths, got {hidden!r}")
    sizes = _check_sizes((n_features, *hidden, n_classes))
    check_fits(gradcheck_memory(n_features=sizes[0], hidden=sizes[1:-1],
                                n_classes=sizes[-1], n_samples=n_samples),
               f"a gradient check of layers {sizes} on {n_samples} samples")
    rng = np.random.default_rng(seed)
    model = MLP(n_features, hidden, n_classes, dtype=np.float64, seed=rng)
    X, y = sample_away_from_kinks(model, n_samples, rng, kink_margin, loss)
    return check_model_gradients(model, X, y, loss=loss, h=h, tol=tol)
