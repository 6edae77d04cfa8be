"""The quality of a generator of training data, measured three ways, and its stream.

Generators of a task's data (:mod:`robnp.data.generators`: the truth, the
class-conditional kernel density) are sampled without limit; this module says how
far each is from the truth, three ways, and feeds one to the one-pass training
loop.

1. **An FID analogue** (Heusel et al., 2017): the Frechet distance between Gaussians
   fitted to the hidden features of a fixed reference network on ``n`` generated and
   ``n`` fresh true points,
   ``|mu_g - mu_t|^2 + tr(S_g + S_t - 2 (S_t^1/2 S_g S_t^1/2)^1/2)``. The reference
   network is trained once per task, deterministically, on true samples with robnp's
   own :func:`robnp.fit` (:data:`REFERENCE`: an MLP of two hidden layers of 64, seed
   0, 8192 true points drawn with seed 0, 100 epochs of Adam at 1e-3, minibatches of
   256, no early stopping); the features are its last hidden layer's ReLU outputs.
   FID is biased upwards at finite ``n`` (by about ``c / n``), so the report gives it
   at the stated ``n`` together with its values on nested prefixes of 1/5 to all of
   the sample, and the effectively unbiased ``FID_inf`` of Chong and Forsyth (2020):
   the intercept of the least-squares line of FID against ``1 / n``.
2. **Exact distances to the truth** where the task's class densities are known
   (:mod:`robnp.data.bayes`) and the generator's density is too (the truth, the KDE):
   per class, the total variation ``(1/2) int |p_k - q_k|`` and both Kullback-Leibler
   divergences, ``KL(p_k || q_k)`` (``p`` the truth; how badly the generator misses
   true data) and ``KL(q_k || p_k)``, averaged over classes with the truth's class
   proportions. In 2-D by quadrature: the rectangle rule on a square grid of spacing
   ``min(scales) / resolution`` (``scales`` the noise and the kernel bandwidth)
   covering both densities' mass, which integrates a Gaussian of standard deviation
   ``s`` to within ``2 exp(-2 pi^2 resolution^2)`` (Poisson summation) and leaves
   ``O(spacing^2)`` at the kinks of ``|p - q|``. In more dimensions by importance
   sampling with the truth as proposal: ``TV = E_p[(1 - q/p)_+]``,
   ``KL(p||q) = E_p[log p - log q]``, ``KL(q||p) = E_q[log q - log p]``, with standard
   errors. A task without a density asked for these is a one-line ConfigError.
   **A generator known only by its samples** (the diffusion sampler) gets the same
   distances after a common blur (:func:`sampled_distances`): both sides convolved
   with ``N(0, b^2 I)``, the truth's exactly, the generator's by a kernel density of
   its samples; ``TV_b`` is a lower bound of ``TV`` at resolution ``b``, estimated
   with an upward noise bias that is reported (``tv_floor``).
3. **The conditional Wasserstein-1 distance** (Sehwag et al., ICLR 2022, bound the
   robustness transferred from a proxy distribution by it): per class, the exact
   optimal transport between equal-size generated and true samples
   (``scipy.optimize.linear_sum_assignment`` on Euclidean distances; the mean matched
   distance), averaged over classes with the truth's proportions. Biased upwards at
   finite size like FID; the truth's own row of a ladder shows the floor.

**What a rung buys.** :func:`trained_accuracy` trains one fixed model
(:data:`ACCURACY`: width 128, two hidden layers, TRADES one pass over ``10^5``
examples of the rung's stream) and measures its clean and ``pgd-cw`` robust accuracy
on true test points; ``quality_report(..., accuracy=...)`` adds it to a rung's report,
and :func:`ladder_correlations` says, by Spearman's rank correlation over the ladder,
which measure orders the rungs as the robust accuracy they buy does.

:class:`GeneratorStream` is a :class:`robnp.training.stream.SampleStream` whose
blocks come from a generator, so :func:`robnp.training.stream.fit_stream` trains on
it: example ``i`` is fixed by the generator's identity, the stream's seed and ``i``.

This module needs the model and the training loop (the reference network, the
stream), so it sits in its own layer above the training loop
(``docs/architecture.md``), although it lives in ``robnp/data/``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .. import _checks
from ..attacks import accuracy as clean_accuracy
from ..attacks import robust_accuracy
from ..errors import ConfigError
from ..model import MLP
from ..training.config import TrainConfig
from ..training.fit import fit
from ..training.stream import BLOCK_SIZE, SampleStream, fit_stream
from . import diffusion  # noqa: F401  (registers the kind "diffusion")
from .generators import (DataTask, Generator, child_seed, fit_generator, load_generator,
                         save_generator, true_generator)

__all__ = ["REFERENCE", "reference_network", "features", "frechet_distance", "fid",
           "exact_distances", "conditional_w1", "quality_report", "GeneratorStream",
           "ACCURACY", "trained_accuracy", "sampled_distances", "spearman", "MEASURES",
           "ladder_correlations",
           "fit_generator", "load_generator", "save_generator", "true_generator"]

#: How the FID analogue's reference network is made (once per task).
REFERENCE = {"hidden": (64, 64), "model_seed": 0, "n_train": 8192, "data_seed": 0,
             "max_epochs": 100, "lr": 1e-3, "batch_size": 256}

#: The one fixed model whose clean and robust accuracy on true test data a rung of
#: the ladder buys (:func:`trained_accuracy`): an MLP of two hidden layers of width
#: 128 trained one pass by TRADES (the scaling-law paper's: 10 sign steps of eps/4,
#: beta 5, label smoothing 0.1) at ``eps`` on ``examples`` examples of the rung's
#: :class:`GeneratorStream`, Adam under a one-cycle schedule, weights averaged
#: (EMA); robust accuracy by ``pgd-cw`` (40 steps on the CW margin) at the same eps.
ACCURACY = {"hidden": (128, 128), "model_seed": 0, "examples": 100_000, "eps": 0.03,
            "recipe": "trades", "schedule": "one-cycle", "ema": True, "lr": 1e-3,
            "batch_size": 256, "attack": "pgd-cw", "test_n": 4000}

#: Seeds' purposes below, so that no two samples share a stream.
_REFERENCE_SAMPLE, _BOX_SAMPLE, _TEST_SAMPLE, _SMOOTHED_SAMPLE = 9, 10, 14, 15


@functools.lru_cache(maxsize=16)
def reference_network(task: DataTask) -> MLP:
    """The task's reference network (:data:`REFERENCE`), trained on first use."""
    X, y = true_generator(task).sample(REFERENCE["n_train"], REFERENCE["data_seed"])
    model = MLP(task.input_dim, REFERENCE["hidden"], task.n_classes,
                seed=REFERENCE["model_seed"])
    fit(model, X, y, TrainConfig(seed=0, lr=REFERENCE["lr"],
                                 batch_size=REFERENCE["batch_size"],
                                 max_epochs=REFERENCE["max_epochs"], patience=None))
    return model


def features(model: MLP, X) -> np.ndarray:
    """The last hidden layer's ReLU outputs of ``model`` at ``X`` (float64)."""
    H = np.asarray(X, dtype=np.float64)
    for W, b in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        H = np.maximum(H @ W.astype(np.float64) + b.astype(np.float64), 0.0)
    return H


def _root(S):
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_distance(mu1, S1, mu2, S2) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`` for covariance
    matrices ``S1``, ``S2``.

    The trace of the root is the sum of the singular values of ``S1^1/2 S2^1/2``
    (symmetric roots by eigendecomposition, negative rounding clipped to 0): unlike
    the square roots of the eigenvalues of ``S1^1/2 S2 S1^1/2``, it does not turn the
    rounding of a singular covariance's zero eigenvalues (dead features) into errors
    of ``sqrt(eps)``, so a sample against itself gives 0 to rounding.
    """
    cross = np.linalg.svd(_root(S1) @ _root(S2), compute_uv=False).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(S1) + np.trace(S2) - 2 * cross)


def _gaussian(F):
    return F.mean(axis=0), np.cov(F, rowvar=False)


def fid(generator: Generator, n: int = 4096, seed: int = 0, *, steps: int = 8) -> dict:
    """The FID analogue of ``generator`` at ``n`` points, its values on ``steps``
    nested prefixes (``n / 5`` to ``n``) and their extrapolation to ``1/n = 0``.

    Returns
    -------
    dict
        ``n``, ``value`` (at ``n``), ``sizes``, ``curve`` (FID at each size),
        ``fid_inf`` (the intercept of the line of FID against ``1 / size``) and
        ``slope``.
    """
    n = _checks.integer("n", n, 50)
    steps = _checks.integer("steps", steps, 2)
    task = generator.task
    net = reference_network(task)
    F_gen = features(net, generator.sample(n, seed)[0])
    F_true = features(net, true_generator(task).sample(n, child_seed(seed,
                                                                      _REFERENCE_SAMPLE))[0])
    sizes = np.unique(np.round(np.linspace(n / 5, n, steps)).astype(int))
    curve = np.array([frechet_distance(*_gaussian(F_gen[:s]), *_gaussian(F_true[:s]))
                      for s in sizes])
    slope, intercept = np.polyfit(1.0 / sizes, curve, 1)
    return {"n": n, "value": float(curve[-1]), "sizes": sizes.tolist(),
            "curve": curve.tolist(), "fid_inf": float(intercept), "slope": float(slope)}


def _scales(generator: Generator) -> list[float]:
    scales = [generator.task.noise]
    h = getattr(generator.options, "h", None)
    if h is not None:
        scales.append(h)
    return scales


def _grid(generator: Generator, resolution: int, max_points: int):
    """The quadrature grid's axes and spacing (module docstring)."""
    task = generator.task
    scales = _scales(generator)
    spacing = min(scales) / resolution
    pad = 10 * max(scales)
    box_seed = child_seed(0, _BOX_SAMPLE)
    rows = [true_generator(task).sample(16384, box_seed)[0]]
    points = getattr(generator, "points", None)
    rows += list(points) if points is not None else [generator.sample(16384, box_seed)[0]]
    rows = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])
    low, high = rows.min(axis=0) - pad, rows.max(axis=0) + pad
    xs = np.arange(low[0], high[0] + spacing / 2, spacing)
    ys = np.arange(low[1], high[1] + spacing / 2, spacing)
    if len(xs) * len(ys) > max_points:
        raise ConfigError(f"the quadrature grid would have {len(xs) * len(ys)} points "
                          f"(spacing {spacing:.3g}), more than max_points={max_points}; "
                          f"lower resolution or raise max_points")
    return xs, ys, spacing


def _weighted(values, priors) -> float:
    return float(np.dot(priors, values))


def exact_distances(generator: Generator, *, method: str = "auto", resolution: int = 1,
                    importance_n: int = 20000, seed: int = 0,
                    max_points: int = 8_000_000) -> dict:
    """Total variation and both KL divergences between the generator's and the true
    class densities (module docstring).

    Parameters
    ----------
    generator : Generator with an exact density (the truth, a KDE)
    method : {"auto", "quadrature", "sampling"}
        ``auto``: quadrature in 2-D, importance sampling otherwise.
    resolution : int >= 1
        Grid points per smallest length scale (quadrature).
    importance_n : int >= 2
        Points per class (importance sampling).
    seed : int >= 0
        Seed of the importance samples.
    max_points : int
        Largest quadrature grid allowed.

    Returns
    -------
    dict
        ``method``, ``tv``, ``kl``, ``kl_reverse`` (averaged over classes with the
        truth's proportions) and per class ``tv_per_class``, ...; for quadrature the
        grid's ``spacing`` and the two densities' total ``mass_true``, ``mass_generated``
        per class (1 up to the rule's error); for sampling the standard errors
        ``tv_se``, ``kl_se``, ``kl_reverse_se``.
    """
    task = generator.task
    task.check_density()
    if not generator.has_density:
        raise ConfigError(f"an exact distance needs the generator's density, which "
                          f"{generator.label()!r} lacks")
    method = _checks.choice("method", method, ("auto", "quadrature", "sampling"))
    if method == "auto":
        method = "quadrature" if task.input_dim == 2 else "sampling"
    priors = task.priors()
    if method == "quadrature":
        if task.input_dim != 2:
            raise ConfigError(f"quadrature needs input_dim 2, got {task.input_dim}; use "
                              f"method='sampling'")
        resolution = _checks.integer("resolution", resolution, 1)
        xs, ys, spacing = _grid(generator, resolution, max_points)
        K = task.n_classes
        tv, kl, klr, mass_p, mass_q = (np.zeros(K) for _ in range(5))
        area = spacing * spacing
        for start in range(0, len(xs), max(1, 200_000 // len(ys))):
            block = xs[start:start + max(1, 200_000 // len(ys))]
            G = np.column_stack([np.repeat(block, len(ys)), np.tile(ys, len(block))])
            lp = task.class_log_density(G)
            lq = generator.class_log_density(G)
            p, q = np.exp(lp), np.exp(lq)
            tv += 0.5 * np.abs(p - q).sum(axis=0) * area
            kl += (p * (lp - lq)).sum(axis=0) * area
            klr += (q * (lq - lp)).sum(axis=0) * area
            mass_p += p.sum(axis=0) * area
            mass_q += q.sum(axis=0) * area
        return {"method": "quadrature", "tv": _weighted(tv, priors), "kl": _weighted(kl, priors),
                "kl_reverse": _weighted(klr, priors), "tv_per_class": tv.tolist(),
                "kl_per_class": kl.tolist(), "kl_reverse_per_class": klr.tolist(),
                "spacing": spacing, "grid_points": len(xs) * len(ys),
                "mass_true": mass_p.tolist(), "mass_generated": mass_q.tolist()}
    n = _checks.integer("importance_n", importance_n, 2)
    counts = np.full(task.n_classes, n)
    P = task.true_rows(counts, child_seed(seed, 11))
    Q = generator.class_rows(counts, child_seed(seed, 12))
    out = {"method": "sampling", "n_per_class": n}
    stats = {"tv": [], "kl": [], "kl_reverse": []}
    errors = {"tv": [], "kl": [], "kl_reverse": []}
    for k in range(task.n_classes):
        lp_p = task.class_log_density(P[k])[:, k]
        lq_p = generator.class_log_density(P[k])[:, k]
        lp_q = task.class_log_density(Q[k])[:, k]
        lq_q = generator.class_log_density(Q[k])[:, k]
        for name, values in (("tv", np.clip(1 - np.exp(lq_p - lp_p), 0, None)),
                             ("kl", lp_p - lq_p), ("kl_reverse", lq_q - lp_q)):
            stats[name].append(values.mean())
            errors[name].append(values.std(ddof=1) / np.sqrt(n))
    for name in stats:
        out[name] = _weighted(stats[name], priors)
        out[f"{name}_se"] = float(np.sqrt(np.dot(priors ** 2, np.square(errors[name]))))
        out[f"{name}_per_class"] = [float(v) for v in stats[name]]
    return out


def sampled_distances(generator: Generator, n: int = 20000, seed: int = 0, *,
                      bandwidth: float | None = None, cells: int = 4,
                      max_points: int = 4_000_000) -> dict:
    """Total variation (and the reverse KL) to the truth of a generator known only by
    its samples, at a stated smoothing (2-D tasks with a density).

    Both distributions are convolved with ``N(0, b^2 I)``: the truth's convolution is
    exact (every density task is a point process blurred by ``N(0, s^2 I)``, so it
    is the same task at noise ``sqrt(s^2 + b^2)``), and the generator's is estimated
    from ``n`` samples per class by a Gaussian kernel density of bandwidth ``b``
    (binned on a grid of spacing ``b / cells``, the binning's ``spacing^2 / 12``
    variance taken out of the filter). Then ``TV_b = 1/2 int |p_b - q_b|`` by
    quadrature on the grid.

    What it estimates, and its biases:

    * ``TV_b <= TV`` (a common blur cannot increase a distance; data processing), and
      ``TV_b -> TV`` as ``b -> 0``: it is a lower bound of the exact distance, at the
      resolution ``b``.
    * The estimate is unbiased pointwise (``E q_hat_b(x) = q_b(x)``), but the absolute
      value makes ``TV_b``'s estimate biased upwards by the kernel density's noise:
      about ``1/2 int sqrt(2/pi Var q_hat_b)`` with ``Var q_hat_b = q_b / (4 pi b^2 n)``
      where the two densities agree (less where they differ). It is reported as
      ``tv_floor``, computed from the estimate itself; the truth's own samples give
      ``tv`` about ``tv_floor`` (tested). It falls as ``1 / sqrt(n)``.

    Parameters
    ----------
    generator : Generator
        Any kind; only its samples are used.
    n : int >= 100
        Samples per class.
    seed : int >= 0
    bandwidth : float > 0, optional
        ``b``; default half the task's noise.
    cells : int >= 2
        Grid points per ``b``.
    max_points : int
        Largest grid allowed.

    Returns
    -------
    dict
        ``method`` ``"samples"``, ``bandwidth``, ``n_per_class``, ``spacing``, ``tv``,
        ``tv_floor``, ``kl_reverse`` (``KL(q_b || p_b)``, biased upwards likewise; None
        when generated mass falls off the grid, 8 blurred noise scales around the
        truth's; the forward KL is not estimable this way, where no sample falls),
        ``outside`` (that mass, counted whole in ``tv``), averaged with the truth's
        class proportions, and ``tv_per_class``.
    """
    task = generator.task
    task.check_density("a distance from samples")
    if task.input_dim != 2:
        raise ConfigError(f"a distance from samples needs input_dim 2, got "
                          f"{task.input_dim}")
    n = _checks.integer("n", n, 100)
    seed = _checks.integer("seed", seed, 0)
    b = (task.noise / 2 if bandwidth is None
         else _checks.real("bandwidth", bandwidth, 0, low_open=True))
    cells = _checks.integer("cells", cells, 2)
    spacing = b / cells
    K = task.n_classes
    Q = generator.class_rows(np.full(K, n), child_seed(seed, _SMOOTHED_SAMPLE))
    # The grid covers the truth's mass; a generated point off it adds its whole mass
    # to TV (the truth has none there), so far-flung samples cost no grid.
    rows = true_generator(task).sample(16384, child_seed(0, _BOX_SAMPLE))[0].astype(np.float64)
    blur = float(np.hypot(task.noise, b))
    pad = 8 * blur
    low, high = rows.min(axis=0) - pad, rows.max(axis=0) + pad
    nx, ny = (int(np.ceil((high - low)[i] / spacing)) + 1 for i in range(2))
    if nx * ny > max_points:
        raise ConfigError(f"the grid would have {nx * ny} points (spacing {spacing:.3g}), "
                          f"more than max_points={max_points}; raise the bandwidth, lower "
                          f"cells or raise max_points")
    xs, ys = low[0] + spacing * np.arange(nx), low[1] + spacing * np.arange(ny)
    edges = [np.append(axis - spacing / 2, axis[-1] + spacing / 2) for axis in (xs, ys)]
    smoothed = dataclasses.replace(task, noise=blur)
    G = np.column_stack([np.repeat(xs, ny), np.tile(ys, nx)])
    log_p = smoothed.class_log_density(G)
    area = spacing * spacing
    filter_sd = np.sqrt(b * b - area / 12) / spacing
    tv, floor, klr, outside = (np.zeros(K) for _ in range(4))
    for k in range(K):
        counts, _, _ = np.histogram2d(Q[k][:, 0], Q[k][:, 1], bins=edges)
        q = gaussian_filter(counts / (n * area), filter_sd, mode="constant", truncate=6.0)
        q = np.clip(q.ravel(), 0, None)  # the filter's rounding can leave -1e-20
        p = np.exp(log_p[:, k])
        outside[k] = max(0.0, 1.0 - q.sum() * area)
        tv[k] = 0.5 * np.abs(p - q).sum() * area + 0.5 * outside[k]
        floor[k] = 0.5 * np.sqrt(2 / np.pi * q / (4 * np.pi * b * b * n)).sum() * area
        pos = q > 0
        klr[k] = (q[pos] * (np.log(q[pos]) - log_p[pos, k])).sum() * area
    priors = task.priors()
    far = outside.max() > 1e-6  # where the truth has no mass KL(q||p) is beyond reach
    return {"method": "samples", "bandwidth": b, "n_per_class": n, "spacing": spacing,
            "grid_points": nx * ny, "tv": _weighted(tv, priors),
            "tv_floor": _weighted(floor, priors),
            "kl_reverse": None if far else _weighted(klr, priors),
            "outside": _weighted(outside, priors), "tv_per_class": tv.tolist()}


def conditional_w1(generator: Generator, n: int = 1536, seed: int = 0) -> dict:
    """The conditional Wasserstein-1 distance between ``n`` generated and ``n`` fresh
    true points (module docstring).

    Returns
    -------
    dict
        ``n``, ``value`` (averaged over classes with the truth's proportions),
        ``per_class``.
    """
    n = _checks.integer("n", n, generator.task.n_classes)
    task = generator.task
    Xg, yg = generator.sample(n, seed)
    Xt, yt = true_generator(task).sample(n, child_seed(seed, _REFERENCE_SAMPLE))
    per_class = []
    for k in range(task.n_classes):
        A = Xg[yg == k].astype(np.float64)
        B = Xt[yt == k].astype(np.float64)
        cost = cdist(A, B)
        rows, cols = linear_sum_assignment(cost)
        per_class.append(float(cost[rows, cols].mean()))
    return {"n": n, "value": _weighted(per_class, task.priors()), "per_class": per_class}


def _accuracy_options(examples=ACCURACY["examples"], eps=ACCURACY["eps"],
                      test_n=ACCURACY["test_n"], seed=0, n_threads=1) -> dict:
    """:func:`trained_accuracy`'s options, checked (before any work is done)."""
    return {"examples": _checks.integer("examples", examples, 1),
            "eps": _checks.real("eps", eps, 0, low_open=True),
            "test_n": _checks.integer("test_n", test_n, 1),
            "seed": _checks.integer("seed", seed, 0),
            "n_threads": _checks.integer("n_threads", n_threads, 1)}


def trained_accuracy(generator: Generator, examples: int = ACCURACY["examples"], *,
                     eps: float = ACCURACY["eps"], test_n: int = ACCURACY["test_n"],
                     seed: int = 0, n_threads: int = 1) -> dict:
    """Clean and robust accuracy on true test data of the fixed model
    (:data:`ACCURACY`) trained one pass on ``examples`` examples of ``generator``.

    Every rung of a ladder gets the same initial weights, the same stream seed and
    the same ``test_n`` true test points (drawn with ``seed``), so the rungs differ in
    their training data alone.

    Parameters
    ----------
    generator : Generator
    examples : int >= 1
        ``D``, examples of the generator's stream trained on, each once.
    eps : float > 0
        The training radius of TRADES and the radius of the ``pgd-cw`` evaluation.
    test_n : int >= 1
        True test points.
    seed : int >= 0
        Seed of the stream and of the test points.
    n_threads : int >= 1
        Threads for training (the results do not depend on it).

    Returns
    -------
    dict
        ``clean_acc``, ``robust_acc`` (floats in [0, 1]), ``examples``, ``eps``,
        ``test_n``, ``seed`` and ``model`` (the settings of :data:`ACCURACY`).
    """
    if not isinstance(generator, Generator):
        raise ConfigError(f"generator must be a robnp Generator, got "
                          f"{type(generator).__name__}")
    examples, eps, test_n, seed, n_threads = _accuracy_options(
        examples=examples, eps=eps, test_n=test_n, seed=seed, n_threads=n_threads).values()
    task = generator.task
    model = MLP(task.input_dim, ACCURACY["hidden"], task.n_classes,
                seed=ACCURACY["model_seed"])
    config = TrainConfig(recipe=ACCURACY["recipe"], train_eps=eps,
                         schedule=ACCURACY["schedule"], ema=ACCURACY["ema"],
                         lr=ACCURACY["lr"], batch_size=ACCURACY["batch_size"], patience=None,
                         seed=0)
    fit_stream(model, GeneratorStream(generator, seed), examples, config, n_threads=n_threads)
    X, y = true_generator(task).sample(test_n, child_seed(seed, _TEST_SAMPLE))
    robust = robust_accuracy(model, X, y, ACCURACY["attack"], eps=(eps,))[eps]
    return {"clean_acc": float(clean_accuracy(model, X, y)), "robust_acc": float(robust),
            "examples": examples, "eps": eps, "test_n": test_n, "seed": seed,
            "model": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in ACCURACY.items()
                      if k not in ("examples", "eps", "test_n")}}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they share."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start + 1
        while stop < len(values) and sorted_values[stop] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2  # mean of start+1 .. stop
        start = stop
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks.

    NaN when fewer than two pairs, or when either side is constant (no order).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"x and y must be 1-D of one length, got shapes {x.shape} "
                          f"and {y.shape}")
    if len(x) < 2:
        return float("nan")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    norm = np.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / norm) if norm > 0 else float("nan")


def _measure(report: dict, name: str):
    exact = report.get("exact") or {}
    sampled = report.get("sampled") or {}
    return {"fid": report["fid"]["value"], "fid_inf": report["fid"]["fid_inf"],
            "w1": report["w1"]["value"], "tv_b": sampled.get("tv")}.get(name, exact.get(name))


#: The quality measures :func:`ladder_correlations` ranks (each: lower is closer to
#: the truth); ``tv_b`` is :func:`sampled_distances`'s smoothed TV.
MEASURES = ("fid", "fid_inf", "tv", "kl", "kl_reverse", "tv_b", "w1")


def ladder_correlations(reports: list[dict]) -> dict:
    """How well each quality measure orders a ladder by the accuracy it buys.

    For each measure of :data:`MEASURES`, Spearman's rank correlation over the
    rungs (reports of :func:`quality_report` with ``accuracy``) between the measure
    and the robust (and the clean) accuracy, over the rungs where the measure is
    defined. A distance that predicts accuracy well correlates near -1.

    Returns
    -------
    dict
        ``measures``: per measure ``{"robust": rho, "clean": rho, "rungs": count}``;
        ``best``: the measure whose robust-accuracy correlation is the most negative
        (the first of :data:`MEASURES` among equals; None when no measure has one).
    """
    missing = [r.get("label", "?") for r in reports if not r.get("accuracy")]
    if missing:
        raise ConfigError(f"rank correlations need every rung's accuracy (quality_report("
                          f"..., accuracy=...)); missing for {', '.join(missing)}")
    out = {}
    for name in MEASURES:
        rows = [(_measure(r, name), r["accuracy"]["robust_acc"], r["accuracy"]["clean_acc"])
                for r in reports]
        rows = [row for row in rows if row[0] is not None]
        if not rows:
            continue
        values, robust, clean = (np.array(c, dtype=np.float64) for c in zip(*rows))
        out[name] = {"robust": spearman(values, robust), "clean": spearman(values, clean),
                     "rungs": len(rows)}
    # ties go to the measure listed first in MEASURES
    ranked = [(v["robust"], MEASURES.index(name), name) for name, v in out.items()
              if np.isfinite(v["robust"])]
    return {"measures": out, "best": min(ranked)[2] if ranked else None}


def quality_report(generator: Generator, n: int = 4096, seed: int = 0, *,
                   w1_n: int = 1536, exact: bool | None = None, accuracy=None,
                   sampled: bool | None = None, sampled_n: int = 20000,
                   **exact_options) -> dict:
    """The three measures of ``generator``'s quality.

    Parameters
    ----------
    generator : Generator
    n : int
        Points of each side of the FID analogue.
    seed : int
    w1_n : int
        Points of each side of the conditional W1.
    exact : bool or None
        None: exact distances when the task and the generator have densities; True:
        required (a one-line ConfigError when impossible); False: skipped.
    sampled : bool or None
        The smoothed distances from samples (:func:`sampled_distances`). None: for a
        generator without an exact density (the diffusion sampler) when the task is
        2-D with a density; True: required (for every kind, so that a ladder is
        measured one way); False: skipped.
    sampled_n : int
        Samples per class of :func:`sampled_distances`.
    accuracy : None, True or dict
        None: no accuracy; True: :func:`trained_accuracy` at its defaults; a dict: its
        keyword arguments (``examples``, ``eps``, ``test_n``, ``seed``, ``n_threads``).
        It trains a model, so it costs far more than the measures.
    **exact_options
        Passed to :func:`exact_distances`.

    Returns
    -------
    dict with ``generator`` (its identity), ``label``, ``knob``, ``fid``, ``exact``
    (None when skipped), ``sampled`` (None when skipped), ``w1`` and, when asked
    for, ``accuracy``.
    """
    if not isinstance(generator, Generator):
        raise ConfigError(f"generator must be a robnp Generator, got "
                          f"{type(generator).__name__}")
    if exact is not None:
        exact = _checks.flag("exact", exact)
    want_exact = exact if exact is not None else (generator.task.has_density
                                                  and generator.has_density)
    if accuracy is not None and accuracy is not True and not isinstance(accuracy, dict):
        raise ConfigError(f"accuracy must be None, True or a dict of trained_accuracy's "
                          f"options, got {accuracy!r}")
    if isinstance(accuracy, dict):
        unknown = set(accuracy) - {"examples", "eps", "test_n", "seed", "n_threads"}
        if unknown:
            raise ConfigError(f"accuracy has unknown options {sorted(unknown)} (allowed: "
                              f"examples, eps, test_n, seed, n_threads)")
        _accuracy_options(**accuracy)
    if sampled is not None:
        sampled = _checks.flag("sampled", sampled)
    task = generator.task
    want_sampled = sampled if sampled is not None else (
        task.has_density and task.input_dim == 2 and not generator.has_density)
    if want_sampled:  # the one-line refusals before any work
        task.check_density("a distance from samples")
        if task.input_dim != 2:
            raise ConfigError(f"a distance from samples needs input_dim 2, got "
                              f"{task.input_dim}")
    sampled_n = _checks.integer("sampled_n", sampled_n, 100)
    report = {"generator": generator.identity(), "label": generator.label(),
              "kind": generator.kind, "knob": generator.knob(),
              "fid": fid(generator, n, seed),
              "exact": exact_distances(generator, **exact_options) if want_exact else None,
              "sampled": sampled_distances(generator, sampled_n, seed) if want_sampled
              else None,
              "w1": conditional_w1(generator, w1_n, seed)}
    if accuracy is not None:
        report["accuracy"] = trained_accuracy(
            generator, **({} if accuracy is True else accuracy))
    return report


class GeneratorStream(SampleStream):
    """A :class:`SampleStream` of a generator's samples: block ``b`` is
    ``generator.sample(block_size, child(seed, b))``, so example ``i`` is fixed by the
    generator's identity, ``seed`` and ``i``, however the stream is read.

    Parameters
    ----------
    generator : Generator
    seed : int >= 0
    block_size : int >= 1
    """

    def __init__(self, generator: Generator, seed: int = 0, *, block_size: int = BLOCK_SIZE):
        if not isinstance(generator, Generator):
            raise ConfigError(f"generator must be a robnp Generator, got "
                              f"{type(generator).__name__}")
        task = generator.task
        super().__init__(task.dataset, seed, noise=task.noise, input_dim=task.input_dim,
                         n_classes=task.n_classes, block_size=block_size)
        self.generator = generator

    def identity(self) -> dict:
        return {**super().identity(), "generator": self.generator.identity()}

    def block(self, b: int):
        if self._cached is not None and self._cached[0] == b:
            return self._cached[1], self._cached[2]
        X, y = self.generator.sample(self.block_size, child_seed(self.seed, 13, b))
        self._cached = (b, X, y)
        return X, y
