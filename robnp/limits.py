"""Memory limits checked before memory is spent.

A width of 10**9 or 10**12 samples does not fail gracefully inside NumPy: it ends
in a ``MemoryError`` (or a ``ValueError`` about array dimensions) deep in a
worker, after other work has started. The functions here estimate, from the sizes
alone, the bytes a piece of work will hold at its peak, compare that with the
memory the machine has available, and raise one :class:`~robnp.errors.ConfigError`
that names the size responsible, the estimate and the machine's memory.

The estimates count the arrays robnp allocates (parameters, gradients, Adam
moments, kernel workspaces, data, buffers); they leave out the interpreter, NumPy,
Numba and compiled code (about 160 MB resident per process, measured on Linux), so
they refuse only what cannot fit, not everything that will not.
"""

from __future__ import annotations

import math

from . import _memory
from ._memory import (MAX_SIZE, MemoryEstimate, available_memory, check_size,  # noqa: F401
                      format_bytes)
from .training.fit import TRAIN_CHUNK_ROWS, EPOCHS_PER_CALL, PERMUTATION_BUDGET

__all__ = ["MAX_SIZE", "check_size", "MemoryEstimate", "available_memory", "format_bytes",
           "training_memory", "gradcheck_memory", "check_fits"]

_FLOAT32 = 4
_FLOAT64 = 8
_INT64 = 8
_ROW_OBJECT = 160  # bytes of a small NumPy array object and its list slot
#: Row-sized arrays a recipe's chunk workspace may hold beyond the model's workspace
#: (adversarial points, their gradient, the best points, a clean distribution), each
#: of ``n_features + n_classes`` values per row.
RECIPE_ROW_ARRAYS = 4


def _layer_sizes(n_features, hidden, n_classes) -> tuple[int, ...]:
    return (check_size("input_dim", n_features),
            *(check_size("width", h) for h in hidden),
            check_size("n_classes", n_classes))


def _param_count(sizes) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _workspace_bytes(sizes, rows: int, itemsize: int) -> float:
    """The four kernel buffers of ``MLP.workspace(rows)``."""
    return float(rows * (sum(sizes[1:]) + sizes[-1] + 2 * max(sizes)) * itemsize)


def training_memory(*, n_features: int, hidden, n_classes: int, n_samples: int,
                    test_fraction: float, batch_size: int,
                    max_epochs: int, train=None) -> MemoryEstimate:
    """Peak bytes of one study task: generate data, train a float32 MLP with Adam,
    attack its test rows.

    Parameters
    ----------
    n_features, hidden, n_classes : int, sequence of int, int
        The model's layer sizes.
    n_samples : int
        Rows generated (train + test).
    test_fraction : float
    batch_size, max_epochs : int
        Training sizes; ``fit`` keeps one float64 loss per possible epoch.
    train : TrainConfig, optional
        The training configuration; when it takes the general loop (see
        :mod:`robnp.training.fit`), its buffers are counted too: a gradient and a
        recipe workspace per chunk of a minibatch (the model's workspace and up to
        :data:`RECIPE_ROW_ARRAYS` row-sized arrays), the optimizer's state, the
        weight average, the checkpoints the monitors keep, the noise, the
        validation split and the monitors' attacks.

    Returns
    -------
    MemoryEstimate
    """
    check_size("n_samples", n_samples)
    check_size("batch_size", batch_size)
    check_size("max_epochs", max_epochs)
    sizes = _layer_sizes(n_features, hidden, n_classes)
    n_params = _param_count(sizes)
    n_test = int(n_samples * test_fraction)
    n_train = n_samples - n_test
    batch_rows = min(batch_size, max(n_train, 1))
    widths = ", ".join(f"{name}={value}" for name, value in
                       (("width", max(sizes[1:-1], default=0)), ("depth", len(sizes) - 2),
                        ("input_dim", sizes[0])))
    # Initialisation draws every block in float64 and concatenates them before the
    # float32 cast; training holds parameters, gradient and two Adam moments.
    parameters = n_params * (2 * _FLOAT64 + _FLOAT32) + n_params * 4 * _FLOAT32
    # Generated float64 data and labels with the generator's temporaries, the
    # split's copies, the float32 copy fit and the attacks take, and the shuffles
    # fit draws for one compiled call.
    epochs_at_once = max(1, min(EPOCHS_PER_CALL, PERMUTATION_BUDGET // max(n_train, 1)))
    data = (n_samples * (sizes[0] * (6 * _FLOAT64 + _FLOAT32) + 3 * _INT64)
            + (epochs_at_once + 1) * n_train * _INT64)
    workspaces = (_workspace_bytes(sizes, batch_rows, _FLOAT32)
                  + batch_rows * (sizes[0] * _FLOAT32 + _INT64)
                  # evaluation and attacks on the test rows: a workspace, the input
                  # gradient, the adversarial points and PGD's scratch
                  + _workspace_bytes(sizes, n_test, _FLOAT32)
                  + 4 * n_test * sizes[0] * _FLOAT32)
    losses = max_epochs * _FLOAT64
    parts = []
    if train is not None and not train.fused:
        n_chunks = -(-batch_rows // TRAIN_CHUNK_ROWS)
        chunk_rows = min(TRAIN_CHUNK_ROWS, batch_rows)
        row_values = sizes[0] + sizes[-1]
        # per chunk: a gradient and the recipe's workspace; then the optimizer's two
        # moments (or SGD's buffer, and Adam's L2 term), the weight average, the best
        # checkpoint, the previous epoch's weights (live and averaged), the monitors'
        # model copy; the minibatch's noise
        vectors = n_chunks + 2 + 1 + 1 + 1 + 2 + 1
        loop = (n_params * vectors * _FLOAT32
                + n_chunks * (_workspace_bytes(
                    sizes, chunk_rows * train.recipe_options.model_rows_per_row, _FLOAT32)
                              + RECIPE_ROW_ARRAYS * chunk_rows * row_values * _FLOAT32)
                + batch_rows * sizes[0] * _FLOAT32)
        # the split's copies of the training rows and its permutations; the monitors'
        # PGD on the validation rows and on the check batch, each like the test rows'
        n_val = math.ceil(train.val_fraction * n_train) if train.select == "robust" else 0
        n_check = min(batch_rows, n_train)
        loop += n_train * (sizes[0] * _FLOAT32 + 4 * _INT64)
        for rows in (n_val, n_check):
            loop += (_workspace_bytes(sizes, rows, _FLOAT32) + 5 * rows * sizes[0] * _FLOAT32
                     + 2 * rows * _INT64)
        parts.append(("training loop buffers", f"batch_size={batch_size}, {widths}",
                      float(loop)))
    return MemoryEstimate((
        ("parameters and Adam moments", widths, float(parameters)),
        ("data", f"n_samples={n_samples}, input_dim={sizes[0]}", float(data)),
        ("workspaces", f"batch_size={batch_size}, {n_test} test rows, {widths}",
         float(workspaces)),
        ("epoch-loss buffer", f"max_epochs={max_epochs}", float(losses)),
        *parts,
    ))


def gradcheck_memory(*, n_features: int, hidden, n_classes: int,
                     n_samples: int) -> MemoryEstimate:
    """Peak bytes of :func:`robnp.gradcheck.check_gradients` (float64 throughout).

    Parameters, the float64 copy, the analytic and numeric gradients (the numeric
    one and its split views) and the initialisation's draws; the batch, its copy,
    the input gradients and a workspace for its rows.
    """
    check_size("samples", n_samples)
    sizes = _layer_sizes(n_features, hidden, n_classes)
    n_params = _param_count(sizes)
    widths = f"hidden={','.join(str(s) for s in sizes[1:-1]) or 'none'}"
    parameters = n_params * 7 * _FLOAT64
    batch = (n_samples * sizes[0] * 5 * _FLOAT64 + n_samples * 2 * _INT64
             + _workspace_bytes(sizes, n_samples, _FLOAT64)
             # the pre-activations of every hidden layer, kept while sampling, and
             # the accepted rows, collected one NumPy row object (~100 B) at a time
             + n_samples * sum(sizes[1:]) * _FLOAT64 + n_samples * 2 * _ROW_OBJECT)
    return MemoryEstimate((
        ("parameters and gradients", widths, float(parameters)),
        ("batch and workspaces", f"samples={n_samples}, {widths}", float(batch)),
    ))


def check_fits(estimate: MemoryEstimate, what: str, available: float | None = None,
               where: str = "this machine") -> None:
    """:func:`robnp._memory.check_fits` with this module's :func:`available_memory`
    (the memory of ``where``, unless ``available`` is given)."""
    if available is None:
        available = available_memory()
    if available is not None:
        _memory.check_fits(estimate, what, available, where)
