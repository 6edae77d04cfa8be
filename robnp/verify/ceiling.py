"""The data's robustness ceiling: the best robust accuracy any classifier can reach.

A classifier ``f`` is *robustly correct* on a labelled point ``(x, y)`` at radius
``eps`` when ``f(x') = y`` for every ``x'`` in the closed ball ``B(x, eps)`` (L-inf
or L2).  Two points of different labels whose balls intersect (distance
``<= 2 eps``) cannot both be robustly correct: a point of the intersection gets one
label.  Conversely, a set ``S`` of points in which no two of different labels
conflict is achievable by a deterministic classifier (give every ball of a point
of ``S`` that point's label; balls of different labels in ``S`` do not meet).
So, on a sample of ``N`` points, the best robust accuracy of deterministic
classifiers is

    ceiling = (size of a maximum independent set of the conflict graph) / N.

* **Two classes.**  The conflict graph is bipartite, and by König's theorem its
  maximum independent set is ``N - (maximum matching)``: ``ceiling = 1 - M / N``
  (Bhagoji, Cullina & Mittal, NeurIPS 2019; Pydi & Jog, ICML 2020).  Pairs come
  from ``scipy.spatial.cKDTree``, the matching from a unit-capacity maximum flow
  (``scipy.sparse.csgraph.maximum_flow``, Dinic).  Soft
  (randomised) classifiers do no better here: the linear program below has only
  edge constraints on a bipartite graph, whose matrix is totally unimodular.
* **More classes, ``method="milp"`` (the default).**  The maximum independent set
  as an integer program, ``max sum_v c_v`` with ``c_u + c_v <= 1`` for every
  conflicting pair and ``c`` binary, solved by HiGHS (``scipy.optimize.milp``) on
  each connected component of the conflict graph (a component with two labels
  only goes to the matching).  Exact for deterministic classifiers; NP-hard in
  general, fast on the sparse graphs of small radii.
* **More classes, ``method="lp"``.**  The hyperedge linear program of Dai, Ding,
  Cullina, Bhagoji & Mittal (NeurIPS 2023) for soft classifiers
  ``h(x)`` in the probability simplex, where ``c_v = inf over B(v) of h(x)_(y_v)``:

      maximise  sum_v c_v   subject to  0 <= c_v <= 1  and
                sum_(v in e) c_v <= 1  for every hyperedge e,

  a hyperedge being a set of points of pairwise distinct labels whose balls share
  a common point (their paper writes it for the loss ``q_v = 1 - c_v``:
  ``sum_(v in e) q_v >= |e| - 1``).  With every hyperedge (degree up to the number
  of labels, ``max_degree=None``) the value is *exact* for soft classifiers: the
  constraints are necessary (sum ``h(x)`` over the labels at a common point ``x``),
  and ``h(x)_k = max {c_v : y_v = k, x in B(v)}`` attains any feasible ``c``,
  since picking one maximiser per label gives a hyperedge.  Soft classifiers can
  beat deterministic ones (three pairwise but not jointly intersecting L2 balls of
  three labels: 1.5 points instead of 1), so this value is ``>=`` the ``milp``
  one.  With ``max_degree`` smaller than the number of labels the LP drops
  constraints and gives an *upper bound* on the soft ceiling.  L-inf balls are
  boxes, which share a point as soon as every pair does (Helly's theorem for
  boxes), so there the hyperedges are the cliques of the conflict graph with
  distinct labels; L2 balls of radius ``eps`` share a point iff the smallest ball
  enclosing their centres has radius ``<= eps``.

**The sample ceiling is optimistic about the population.**  For any fixed
classifier, its robust accuracy on a fresh sample is an unbiased estimate of its
population robust accuracy; the sample ceiling maximises over classifiers after
seeing the sample, so its expectation is at least the population's best robust
accuracy.  At ``eps = 0`` it is 1 for every sample without cross-label
duplicates, while circles' Bayes accuracy at noise 0.15 is about 0.95
(:func:`robnp.data.bayes.bayes_error`).  As the sample grows at a fixed
``eps > 0``, balls overlap more and the ceiling falls towards the population's;
:func:`population_ceiling` shows that convergence.  At small ``eps`` it is slow: on
circles at noise 0.15 a fresh draw of 1000 points (``population_ceiling`` with
``sizes=(1000,)``, seed 0) has a ceiling of 0.992 at ``eps = 0.01``, while no
classifier's robust accuracy on the population exceeds its clean accuracy, and no
clean accuracy exceeds the Bayes accuracy (about 0.95).  The
population's best robust accuracy therefore lies at or below the Bayes accuracy at
every ``eps``; :attr:`PopulationCeiling.capped` is the sample ceiling cut to it (still
an estimate, biased upwards where the cut does not bind), and a value above it is
never something a classifier can attain on the population.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse.csgraph import connected_components, maximum_flow
from scipy.spatial import cKDTree

from .. import _checks
from ..errors import ConfigError, DataError

__all__ = ["conflict_pairs", "robustness_ceiling", "PopulationCeiling",
           "population_ceiling", "ceiling_figure"]

#: The order ``p`` of each norm's distance.
_ORDERS = {"linf": np.inf, "l2": 2.0}
_METHODS = ("matching", "milp", "lp")


def _check_norm(norm) -> float:
    return _ORDERS[_checks.norm("norm", norm)]


def _check_sample(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] < 1:
        raise DataError(f"X must have shape (n_samples >= 1, n_features), got {X.shape}")
    if y.shape != (X.shape[0],):
        raise DataError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise DataError(f"X must be finite; row {int(np.argmin(finite))} holds NaN or inf")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(f"y must hold integer labels, got dtype {y.dtype}")
    return X, y.astype(np.int64)


def _check_eps(eps) -> tuple[np.ndarray, bool]:
    scalar = np.ndim(eps) == 0
    try:
        values = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConfigError(f"eps must be a number >= 0 or a list of them, got {eps!r}") from None
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) \
            or np.any(values < 0):
        raise ConfigError(f"eps must be a finite number >= 0 or a non-empty list of them, "
                          f"got {eps!r}")
    return values, scalar


def _pairs_and_distances(X, y, radius, p):
    """Cross-label pairs ``i < j`` within ``radius`` and their distances."""
    # The tree is asked slightly beyond the radius so that no pair is lost to its
    # own rounding; the distances computed here decide.
    pairs = cKDTree(X).query_pairs(radius * (1 + 1e-9), p=p, output_type="ndarray")
    pairs = pairs[y[pairs[:, 0]] != y[pairs[:, 1]]] if len(pairs) else pairs.reshape(0, 2)
    diff = X[pairs[:, 0]] - X[pairs[:, 1]]
    dist = np.abs(diff).max(axis=1) if p == np.inf else np.sqrt((diff * diff).sum(axis=1))
    return pairs.astype(np.int64), dist


def conflict_pairs(X, y, eps: float, norm: str = "linf") -> np.ndarray:
    """Pairs of differently labelled points whose ``eps``-balls intersect.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    y : array_like of shape (n_samples,), integer labels
    eps : float >= 0
    norm : {"linf", "l2"}

    Returns
    -------
    ndarray of shape (n_pairs, 2), int64
        Rows ``(i, j)`` with ``i < j``, ``y[i] != y[j]`` and
        ``|X[i] - X[j]| <= 2 eps``, in lexicographic order.
    """
    p = _check_norm(norm)
    X, y = _check_sample(X, y)
    values, scalar = _check_eps(eps)
    if not scalar:
        raise ConfigError(f"eps must be one number here, got {eps!r}")
    pairs, dist = _pairs_and_distances(X, y, 2 * values[0], p)
    pairs = pairs[dist <= 2 * values[0]]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _matching_size(pairs: np.ndarray, y: np.ndarray, n: int) -> int:
    """Maximum matching of a conflict graph whose edges join two labels only.

    Computed as a unit-capacity maximum flow (source -> one side -> other side ->
    sink) with Dinic's algorithm, ``scipy.sparse.csgraph.maximum_flow``: on the
    dense conflict graphs of large radii it was measured 10-20x faster than
    ``maximum_bipartite_matching`` (0.6 s against 7-14 s for 911,180 pairs), which
    the tests use as an independent check.
    """
    if len(pairs) == 0:
        return 0
    first = y[pairs[:, 0]] == y[pairs[0, 0]]
    left = np.where(first, pairs[:, 0], pairs[:, 1])
    right = np.where(first, pairs[:, 1], pairs[:, 0])
    source, sink = n, n + 1
    tails, heads = np.unique(left), np.unique(right)
    rows = np.concatenate([np.full(len(tails), source), left, heads])
    cols = np.concatenate([tails, right, np.full(len(heads), sink)])
    network = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)),
                                shape=(n + 2, n + 2))
    return int(maximum_flow(network, source, sink, method="dinic").flow_value)


def _independent_set_milp(pairs: np.ndarray, n: int, time_limit: float) -> int:
    """Maximum independent set of the graph ``pairs`` on vertices ``0..n-1`` (HiGHS)."""
    rows = np.repeat(np.arange(len(pairs)), 2)
    A = sparse.csr_matrix((np.ones(2 * len(pairs)), (rows, pairs.ravel())),
                          shape=(len(pairs), n))
    result = milp(-np.ones(n), constraints=LinearConstraint(A, -np.inf, 1),
                  integrality=np.ones(n), bounds=Bounds(0, 1),
                  options={"time_limit": float(time_limit)})
    if result.status == 1:
        raise ConfigError(
            f"the exact multi-class ceiling (an integer program on a connected conflict "
            f"graph of {n} points and {len(pairs)} pairs) was not proven within "
            f"time_limit={time_limit} s; raise time_limit, or use method='lp' for an "
            f"upper bound")
    if result.status != 0:
        raise RuntimeError(f"the independent-set program did not solve: {result.message}")
    return int(round(-result.fun))


def _enclosing_radius(P: np.ndarray) -> float:
    """Radius of the smallest ball enclosing the rows of ``P`` (a handful of points).

    The smallest enclosing ball is the circumscribed ball, within their affine
    hull, of some subset of the points that contains all the others; trying
    every subset is exact and cheap for the few points of one hyperedge.
    """
    best = np.inf
    for size in range(1, len(P) + 1):
        for subset in itertools.combinations(range(len(P)), size):
            Q = P[list(subset)]
            if size == 1:
                centre = Q[0]
            else:
                D = Q[1:] - Q[0]
                gram = D @ D.T
                try:
                    coef = np.linalg.solve(gram, 0.5 * np.diag(gram))
                except np.linalg.LinAlgError:
                    continue  # affinely dependent: a smaller subset covers it
                centre = Q[0] + coef @ D
            radius = np.sqrt(((Q - centre) ** 2).sum(axis=1)).max()
            if radius < best and np.all(
                    np.sqrt(((P - centre) ** 2).sum(axis=1)) <= radius * (1 + 1e-12) + 1e-15):
                best = radius
    return float(best)


def _hyperedges(X, y, pairs, eps, p, max_degree):
    """Sets of >= 2 points of distinct labels whose eps-balls share a point."""
    neighbours = [set() for _ in range(len(X))]
    for i, j in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)
    edges = [tuple(pair) for pair in pairs]
    frontier = edges
    for _ in range(3, max_degree + 1):
        grown = []
        for clique in frontier:
            # Extend by higher-numbered common neighbours, so each set appears once.
            common = set.intersection(*(neighbours[v] for v in clique))
            labels = {y[v] for v in clique}
            for w in sorted(common):
                if w > clique[-1] and y[w] not in labels:
                    candidate = (*clique, w)
                    if p == np.inf or _enclosing_radius(X[list(candidate)]) <= eps * (1 + 1e-12):
                        grown.append(candidate)
        edges.extend(grown)
        frontier = grown
        if not frontier:
            break
    return edges


def _soft_lp(X, y, pairs, eps, p, max_degree) -> float:
    edges = _hyperedges(X, y, pairs, eps, p, max_degree)
    n = len(X)
    rows = np.concatenate([np.full(len(e), k) for k, e in enumerate(edges)])
    cols = np.concatenate([np.asarray(e) for e in edges])
    A = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(edges), n))
    result = linprog(-np.ones(n), A_ub=A, b_ub=np.ones(len(edges)), bounds=(0, 1),
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"the hyperedge linear program did not solve: {result.message}")
    return -float(result.fun)


def _ceiling_one(X, y, pairs, eps, p, method, max_degree, time_limit) -> float:
    n = len(X)
    n_labels = len(np.unique(y))
    if len(pairs) == 0:
        return 1.0
    if method == "lp":
        degree = n_labels if max_degree is None else min(max_degree, n_labels)
        return _soft_lp(X, y, pairs, eps, p, degree) / n
    if n_labels <= 2 and method is None:
        return 1.0 - _matching_size(pairs, y, n) / n
    # Vertices without conflicts are always correct; the rest split into components.
    n_comp, comp = connected_components(
        sparse.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)),
        directed=False)
    lost = 0
    order = np.argsort(comp[pairs[:, 0]], kind="stable")
    bounds = np.searchsorted(comp[pairs[order, 0]], np.arange(n_comp + 1))
    for c in range(n_comp):
        edges = pairs[order[bounds[c]:bounds[c + 1]]]
        if len(edges) == 0:
            continue
        vertices, local = np.unique(edges, return_inverse=True)
        local = local.reshape(-1, 2)
        if method is None and len(np.unique(y[vertices])) == 2:
            lost += _matching_size(local, y[vertices], len(vertices))
        else:
            lost += len(vertices) - _independent_set_milp(local, len(vertices), time_limit)
    return 1.0 - lost / n


def robustness_ceiling(X, y, eps, norm: str = "linf", *, method: str | None = None,
                       max_degree: int | None = None, time_limit: float = 60.0):
    """The best robust accuracy any classifier can reach on the sample ``(X, y)``.

    See the module docstring for the graph, the two-class matching (König) and
    the multi-class programs.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    y : array_like of shape (n_samples,), integer labels
    eps : float or sequence of float, each >= 0
        Radius of the perturbation ball.
    norm : {"linf", "l2"}
    method : {None, "matching", "milp", "lp"}
        ``None``: the matching for at most two labels, otherwise the integer
        program on each connected component (the matching for components with
        two labels); both exact for deterministic classifiers.  ``"matching"``
        needs at most two labels; ``"milp"`` uses the integer program everywhere.  ``"lp"``: the hyperedge linear program of Dai et al. (2023), the
        exact ceiling of soft classifiers (an upper bound when ``max_degree`` is
        below the number of labels).
    max_degree : int >= 2 or None
        Largest hyperedge for ``method="lp"``; ``None`` takes them all.
    time_limit : float > 0
        Seconds HiGHS may spend on the integer program of one connected component
        (more than two labels only).  The program is NP-hard in general: it is
        fast while the conflict graph is sparse (small eps relative to the noise)
        and slow on large, dense, many-class graphs (measured: spirals with 4
        classes, noise 0.2, 600 points: 0.2 s at eps 0.05, 15 s at eps 0.2).
        Running out is a ``ConfigError``, never a silent bound.

    Returns
    -------
    float, or ndarray of shape (len(eps),) float64 when ``eps`` is a sequence
    """
    p = _check_norm(norm)
    X, y = _check_sample(X, y)
    values, scalar = _check_eps(eps)
    if method is not None and method not in _METHODS:
        raise ConfigError(f"method must be None or one of {', '.join(_METHODS)}, "
                          f"got {method!r}")
    if method == "matching" and len(np.unique(y)) > 2:
        raise ConfigError(f"method 'matching' needs at most 2 labels, got "
                          f"{len(np.unique(y))}")
    if max_degree is not None and (isinstance(max_degree, bool)
                                   or not isinstance(max_degree, (int, np.integer))
                                   or max_degree < 2):
        raise ConfigError(f"max_degree must be None or an integer >= 2, got {max_degree!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) \
            or not time_limit > 0:
        raise ConfigError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    pairs, dist = _pairs_and_distances(X, y, 2 * values.max(), p)
    out = np.array([_ceiling_one(X, y, pairs[dist <= 2 * e], e, p, method, max_degree,
                                 time_limit) for e in values])
    return float(out[0]) if scalar else out


@dataclass(frozen=True)
class PopulationCeiling:
    """Sample ceilings of fresh draws of a generator, by sample size.

    Attributes
    ----------
    dataset : str
    eps : ndarray of shape (n_eps,), float64
    sizes : ndarray of shape (n_sizes,), int64
    ceilings : ndarray of shape (n_sizes, n_eps), float64
        ``ceilings[i, j]``: the ceiling of one draw of ``sizes[i]`` points at
        ``eps[j]``.
    norm : str
    params : dict
        The generator's ``noise``, ``input_dim``, ``n_classes`` and the ``seed``.
    bayes_accuracy : ndarray of shape (n_sizes,), float64, or None
        ``1 - bayes_error`` of each size's generator (moons' and spirals' arcs depend
        on the size): the best clean accuracy of the population, and so a bound on
        its best robust accuracy at every ``eps``. None for a dataset without an
        exact density.
    """

    dataset: str
    eps: np.ndarray
    sizes: np.ndarray
    ceilings: np.ndarray
    norm: str
    params: dict = field(default_factory=dict)
    bayes_accuracy: np.ndarray | None = None

    @property
    def capped(self) -> np.ndarray:
        """The estimate of the population's best robust accuracy, shape (n_sizes,
        n_eps): each sample ceiling, cut to the Bayes accuracy where it exceeds it.
        A sample ceiling's expectation is at least the population's value, so this
        stays an optimistic estimate where the cut does not bind; where it binds,
        the Bayes accuracy is a bound that holds (it need not be attained)."""
        if self.bayes_accuracy is None:
            return self.ceilings.copy()
        return np.minimum(self.ceilings, self.bayes_accuracy[:, None])

    @property
    def above_bayes(self) -> np.ndarray:
        """Where the sample ceiling exceeds the Bayes accuracy, bool of shape
        (n_sizes, n_eps): sampling optimism, not attainable on the population (all
        False without an exact density)."""
        if self.bayes_accuracy is None:
            return np.zeros(self.ceilings.shape, bool)
        return self.ceilings > self.bayes_accuracy[:, None]


def population_ceiling(dataset: str, eps, *, sizes=(250, 500, 1000, 2000, 4000, 8000),
                       seed: int = 0, norm: str = "linf", noise: float = 0.15,
                       input_dim: int = 2, n_classes: int | None = None,
                       method: str | None = None) -> PopulationCeiling:
    """Estimate the population's robustness ceiling from fresh samples of growing size.

    Each size gets its own draw of ``make_dataset(dataset, size, noise, seed=s,
    input_dim=input_dim, n_classes=n_classes)``, with ``s`` derived from
    ``(seed, size)``, and its sample ceiling (:func:`robustness_ceiling`).  Each
    value overestimates the population's best robust accuracy in expectation
    (module docstring); the decrease with size shows how far the estimate has
    converged.  For moons and spirals the noise-free points depend on the size,
    so each size is a slightly different distribution, with its own Bayes
    accuracy (:func:`robnp.data.bayes.bayes_error`), which caps the estimate
    (:attr:`PopulationCeiling.capped`).

    Parameters
    ----------
    dataset : str
    eps : float or sequence of float >= 0
    sizes : sequence of int >= 2
    seed : int >= 0
    norm : {"linf", "l2"}
    noise, input_dim, n_classes
        Passed to :func:`robnp.data.make_dataset`.
    method : see :func:`robustness_ceiling`

    Returns
    -------
    PopulationCeiling
    """
    from ..data import make_dataset
    from ..data.bayes import bayes_error, density_datasets

    values, _ = _check_eps(eps)
    _check_norm(norm)
    sizes = list(sizes) if np.ndim(sizes) else [sizes]
    if not sizes or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 2
                        for s in sizes):
        raise ConfigError(f"sizes must be a non-empty list of integers >= 2, got {sizes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    rows = []
    for size in sizes:
        draw_seed = int(np.random.SeedSequence([int(seed), int(size)]).generate_state(1)[0])
        X, y = make_dataset(dataset, int(size), noise, seed=draw_seed, input_dim=input_dim,
                            n_classes=n_classes)
        rows.append(robustness_ceiling(X, y, values, norm, method=method))
    bayes = None
    if dataset in density_datasets() and noise > 0:
        bayes = np.array([1.0 - bayes_error(dataset, n_samples=int(size), noise=noise,
                                            input_dim=input_dim, n_classes=n_classes)
                          for size in sizes])
    return PopulationCeiling(dataset, values, np.asarray(sizes, dtype=np.int64),
                             np.vstack(rows), norm,
                             {"noise": noise, "input_dim": input_dim,
                              "n_classes": n_classes, "seed": seed}, bayes)


def ceiling_figure(result: PopulationCeiling, bayes_accuracy: float | None = None):
    """Sample ceiling against sample size, one line per ``eps``.

    Parameters
    ----------
    result : PopulationCeiling
    bayes_accuracy : float, optional
        Drawn as a dashed line: the population's best clean accuracy (from
        :func:`robnp.data.bayes.bayes_error`), which the ``eps = 0`` sample
        ceiling (always 1 without duplicates) does not see. Default: the largest
        size's ``result.bayes_accuracy``. Above it the figure is shaded: no
        classifier attains that on the population, and sample ceilings there
        (drawn hollow) are sampling optimism.

    Returns
    -------
    matplotlib.figure.Figure
        On the Agg canvas, outside pyplot (nothing to close).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if bayes_accuracy is None and result.bayes_accuracy is not None:
        bayes_accuracy = float(result.bayes_accuracy[-1])
    above = result.above_bayes
    for j, e in enumerate(result.eps):
        (line,) = ax.plot(result.sizes, result.ceilings[:, j], marker="o", label=f"eps = {e:g}")
        if above[:, j].any():
            ax.plot(result.sizes[above[:, j]], result.ceilings[above[:, j], j], marker="o",
                    linestyle="none", markerfacecolor="white", color=line.get_color())
    if bayes_accuracy is not None:
        ax.axhline(bayes_accuracy, color="black", linestyle="--", linewidth=1,
                   label=f"Bayes accuracy {bayes_accuracy:.4f}")
        ax.axhspan(bayes_accuracy, 1.02, color="gray", alpha=0.12, linewidth=0,
                   label="above the Bayes accuracy:\nnot attainable on the population")
    ax.set_xscale("log")
    ax.set_xlabel("sample size")
    ax.set_ylabel("robustness ceiling (best robust accuracy)")
    ax.set_title(f"{result.dataset}: sample ceiling, {result.norm} ball "
                 f"(noise {result.params.get('noise')})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
