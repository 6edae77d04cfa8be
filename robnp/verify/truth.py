"""What the data allows: attack results judged against the generator's exact truth.

On the synthetic datasets the class densities are known (:mod:`robnp.data.bayes`),
so every question the scaling-law paper's human study asks of CIFAR-10 images
(Bartoldson et al. 2024, Abstract and Section G: are adversarial images of large
radius still of their label, or did the attack change the true class?) has an
exact answer:

* :func:`invalid_share`: of the points an attack broke, the share whose Bayes
  label is no longer the clean label (an "invalid" adversarial example, as the
  paper's humans judged them);
* :func:`error_region_robust_accuracy`: robustness in the *error-region* sense
  (Diochnos et al. 2018, "Adversarial risk and robustness"; Suggala et al. 2019,
  "Revisiting adversarial risk"), where a perturbed point is an error only where
  the model disagrees with the Bayes label there;
* :func:`bayes_robust_accuracy`: the Bayes classifier's own robust accuracy under
  the same threat, exact for the radial datasets and an attack's upper bound for
  the Gaussian mixtures (:class:`BayesClassifier`);
* :func:`robustness_bracket`: certified <= exact <= every attack's robust accuracy
  <= clean accuracy, from an :class:`~robnp.attacks.Evaluation` and
  :func:`~robnp.verify.verify_radii`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks
from ..attacks import Evaluation, evaluate, predict
from ..data import bayes
from ..errors import ConfigError, DataError
from ..losses import loss_and_grad_logits
from .bab import verify_radii

__all__ = ["DataSource", "BayesClassifier", "invalid_share", "error_region_robust_accuracy",
           "bayes_robust_accuracy", "RobustnessBracket", "robustness_bracket",
           "adversarial_points"]


@dataclass(frozen=True)
class DataSource:
    """The generating parameters of a synthetic dataset, as
    :func:`robnp.make_dataset` takes them (any seed): what the truth depends on.

    ``noise`` must be > 0 (noise 0 has no density).
    """

    dataset: str
    n_samples: int
    noise: float
    input_dim: int = 2
    n_classes: int | None = None

    def __post_init__(self):
        # The density module checks every parameter by its own rules.
        bayes.class_priors(self.dataset, n_samples=self.n_samples, n_classes=self.n_classes)
        bayes.class_log_density(self.dataset, np.zeros((1, self.input_dim)),
                                n_samples=self.n_samples, noise=self.noise,
                                input_dim=self.input_dim, n_classes=self.n_classes)

    @property
    def kwargs(self) -> dict:
        return {"n_samples": self.n_samples, "noise": self.noise,
                "input_dim": self.input_dim, "n_classes": self.n_classes}

    def label(self, X) -> np.ndarray:
        """Bayes label of every row, int64 of shape (n,)."""
        return bayes.bayes_label(self.dataset, X, **self.kwargs)

    @property
    def radial(self) -> bool:
        return bayes.shell_dim(self.dataset, self.input_dim) is not None


def _labels(evaluation: Evaluation, y) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != evaluation.clean_correct.shape:
        raise DataError(f"y must have shape {evaluation.clean_correct.shape} (the "
                        f"evaluation's points), got {y.shape}")
    return y.astype(np.int64)


def _bayes_at(source: DataSource, points: np.ndarray) -> np.ndarray:
    """Bayes labels at an (n_eps, n_points, d) stack of points."""
    n_eps, n_points, d = points.shape
    return source.label(points.reshape(-1, d).astype(np.float64)).reshape(n_eps, n_points)


def adversarial_points(evaluation: Evaluation, X, y,
                       source: DataSource | None = None) -> dict[str, np.ndarray]:
    """Every attack's points of an evaluation as plain arrays, ready for ``np.savez``
    (no object arrays, so they load without pickle).

    Returns
    -------
    dict with
        ``X`` (n_points, n_features) and ``y`` (n_points,): the clean points and labels;
        ``eps`` (n_eps,); ``attacks`` (n_attacks,): names, in the order run;
        ``points`` (n_attacks, n_eps, n_points, n_features): each attack's point (the
        clean point where it did not run); ``success`` and ``attacked``
        (n_attacks, n_eps, n_points), bool; and, with a ``source`` whose density is
        known, ``bayes_label_clean`` (n_points,) and ``bayes_label``
        (n_attacks, n_eps, n_points): the Bayes label at each clean and attack point.
    """
    y = _labels(evaluation, y)
    X = np.asarray(X)
    results = list(evaluation.attacks.values())
    if X.shape[:1] != y.shape or (results and X.shape != results[0].adversarial.shape[1:]):
        raise DataError(f"X must hold the evaluation's {y.shape[0]} points, got shape "
                        f"{X.shape}")
    out = {
        "X": X, "y": y, "eps": np.asarray(evaluation.eps, np.float64),
        "attacks": np.array([result.name for result in results], dtype=str),
        "points": np.stack([result.adversarial for result in results]),
        "success": np.stack([result.success for result in results]),
        "attacked": np.stack([result.attacked for result in results]),
    }
    if source is not None:
        out["bayes_label_clean"] = source.label(X.astype(np.float64))
        out["bayes_label"] = np.stack([_bayes_at(source, result.adversarial)
                                       for result in results])
    return out


def invalid_share(evaluation: Evaluation, y, source: DataSource) -> dict[str, np.ndarray]:
    """For every attack and radius, the share of its successful adversarial points
    whose Bayes label differs from the clean label ``y``.

    Parameters
    ----------
    evaluation : Evaluation
    y : array_like of shape (n_points,), int
        The labels the evaluation attacked.
    source : DataSource

    Returns
    -------
    dict of attack name to ndarray of shape (n_eps,), float64
        NaN where the attack broke no point at that radius.
    """
    y = _labels(evaluation, y)
    out = {}
    for name, result in evaluation.attacks.items():
        changed = _bayes_at(source, result.adversarial) != y[None, :]
        n = result.success.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(n > 0, (changed & result.success).sum(axis=1) / np.maximum(n, 1),
                                 np.nan)
    return out


def error_region_robust_accuracy(model, evaluation: Evaluation, source: DataSource
                                 ) -> dict[str, np.ndarray]:
    """Robust accuracy in the error-region sense, at every attack's points.

    A point counts as an error at radius eps when the model's class at the
    attack's point ``x'`` differs from the Bayes label *at* ``x'`` (Diochnos et
    al. 2018; Suggala et al. 2019): a perturbation that really changed the class,
    followed by the model, is not an error. The attacks searched for ``x'`` with
    a wrong class against the clean label, not against the Bayes label, so this
    is the error-region accuracy along their points (an upper bound on the
    worst case over the ball).

    Parameters
    ----------
    model : MLP, or any object of the attack protocol
        The model the evaluation attacked.
    evaluation : Evaluation
    source : DataSource

    Returns
    -------
    dict of attack name to ndarray of shape (n_eps,), float64
    """
    out = {}
    for name, result in evaluation.attacks.items():
        n_eps, n_points, d = result.adversarial.shape
        flat = result.adversarial.reshape(-1, d)
        agree = predict(model, flat).reshape(n_eps, n_points) == _bayes_at(source,
                                                                          result.adversarial)
        out[name] = np.count_nonzero(agree, axis=1) / n_points
    return out


# ---------------------------------------------------------------------------
# the Bayes classifier under attack
# ---------------------------------------------------------------------------

class BayesClassifier:
    """The Bayes-optimal classifier of a Gaussian-mixture dataset, through the
    attack protocol: ``logits(X)`` is the exact log posterior and
    ``input_gradient(X, y, loss)`` its analytic gradient
    (:func:`robnp.data.bayes.log_posterior_gradient`) chained with the loss's
    gradient in the logits (:func:`robnp.losses.loss_and_grad_logits`).
    """

    dtype = np.float64

    def __init__(self, source: DataSource):
        if source.radial:
            raise ConfigError(f"dataset must be a Gaussian mixture for BayesClassifier (the "
                              f"radial ones are decided exactly), got {source.dataset!r}")
        self.source = source
        self.n_features = source.input_dim
        self.n_classes = len(bayes.class_priors(source.dataset, n_samples=source.n_samples,
                                                n_classes=source.n_classes))

    def logits(self, X) -> np.ndarray:
        """Log posterior, shape (n, n_classes), float64."""
        return self._log_post(X)[0]

    def _log_post(self, X):
        return bayes.log_posterior_gradient(self.source.dataset, X, **self.source.kwargs)

    def input_gradient(self, X, y, loss: str = "cross_entropy", y_target=None) -> np.ndarray:
        """Gradient of the mean ``loss`` of the log posterior over the rows, shape
        (n, input_dim), float64."""
        Z, dZ_dX = self._log_post(X)
        _, dL_dZ = loss_and_grad_logits(Z, np.asarray(y), loss, y_target)
        return np.einsum("nk,nkd->nd", np.asarray(dL_dZ, np.float64), dZ_dX)


def _radial_robust(source: DataSource, X: np.ndarray, y: np.ndarray, eps: float,
                   norm: str) -> np.ndarray:
    """Exact: the Bayes label depends on ``rho = |x_S|`` only, so it is constant on a
    ball iff no label change lies in the range of ``rho`` over the ball (an
    interval, the ball being connected) and the label there is ``y``. Nuisance
    coordinates move freely without changing it."""
    d = bayes.shell_dim(source.dataset, source.input_dim)
    Xs = np.abs(X[:, :d])
    if norm == "linf":
        rho_lo = np.linalg.norm(np.maximum(Xs - eps, 0.0), axis=1)
        rho_hi = np.linalg.norm(Xs + eps, axis=1)
    else:
        rho = np.linalg.norm(Xs, axis=1)
        rho_lo, rho_hi = np.maximum(rho - eps, 0.0), rho + eps
    cuts = bayes.shell_label_changes(source.dataset, **source.kwargs)
    probe = np.zeros((len(X), source.input_dim))
    probe[:, 0] = rho_lo
    label_lo = source.label(probe)
    crosses = np.zeros(len(X), bool)
    for cut in cuts:
        crosses |= (rho_lo < cut) & (cut <= rho_hi)
    return (label_lo == y) & ~crosses


def bayes_robust_accuracy(source: DataSource, X, y, eps, norm: str = "linf",
                          attacks=("pgd",), seed=0) -> tuple[np.ndarray, bool]:
    """The Bayes classifier's robust accuracy on ``(X, y)`` at every radius.

    Parameters
    ----------
    source : DataSource
    X : array_like of shape (n, input_dim)
    y : array_like of shape (n,), int
    eps : sequence of float >= 0
    norm : {"linf", "l2"}
    attacks : sequence of attack names or (name, option mapping) pairs
        Mixtures only; run with ``norm``, through :func:`robnp.evaluate` on :class:`BayesClassifier`; the worst
        case over them is reported.
    seed : int

    Returns
    -------
    accuracy : ndarray of shape (n_eps,), float64
    exact : bool
        True for the radial datasets (``circles``, ``spheres``), where the range of
        ``|x_S|`` over the L-inf box or L2 ball decides the Bayes label exactly;
        False for the mixtures, where the value is an attack's and so an upper
        bound on the Bayes classifier's robust accuracy.
    """
    _checks.norm("norm", norm)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    radii = tuple(float(e) for e in np.atleast_1d(eps))
    if any(not np.isfinite(e) or e < 0 for e in radii):
        raise ConfigError(f"eps must hold finite numbers >= 0, got {radii}")
    if X.ndim != 2 or X.shape[1] != source.input_dim or y.shape != (X.shape[0],):
        raise DataError(f"X must have shape (n, {source.input_dim}) and y shape (n,), got "
                        f"{X.shape} and {y.shape}")
    if source.radial:
        return np.array([_radial_robust(source, X, y, e, norm).mean() for e in radii]), True
    chosen = [(entry, {"norm": norm}) if isinstance(entry, str)
              else (entry[0], {**dict(entry[1] or {}), "norm": norm}) for entry in attacks]
    result = evaluate(BayesClassifier(source), X, y, radii, chosen, seed=seed)
    return np.asarray(result.worst_robust_acc, dtype=np.float64), False


# ---------------------------------------------------------------------------
# the bracket
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RobustnessBracket:
    """Per radius: ``certified <= exact <= attacks[name] <= clean``.

    Attributes
    ----------
    eps : tuple of float
    clean : float
    certified : ndarray of shape (n_eps,), float64
        Share of points proven robust.
    upper : ndarray of shape (n_eps,), float64
        One minus the share with a verified counterexample (the verifier's and every
        attack's together).
    undecided : ndarray of shape (n_eps,), int64
    attacks : dict of str to ndarray of shape (n_eps,)
        Each attack's robust accuracy.
    """

    eps: tuple
    clean: float
    certified: np.ndarray
    upper: np.ndarray
    undecided: np.ndarray
    attacks: dict

    @property
    def exact(self) -> np.ndarray:
        """The robust accuracy where nothing is undecided, NaN elsewhere."""
        return np.where(self.undecided == 0, self.certified, np.nan)


def robustness_bracket(model, X, y, evaluation: Evaluation, budget: int = 4096,
                       bounds=None, seed=0) -> RobustnessBracket:
    """Join an evaluation of ``model`` on ``(X, y)`` with the verifier's verdicts
    (:func:`robnp.verify.verify_radii`) at the same radii.

    A point that some attack broke is not robust whatever the verifier left
    undecided, so ``upper`` takes the smaller of the two upper bounds; every
    attack of the evaluation must use one norm.
    """
    norms = {result.options.norm for result in evaluation.attacks.values()}
    if len(norms) != 1:
        raise ConfigError(f"the evaluation's attacks must share one norm for a bracket, "
                          f"got {sorted(norms)}")
    norm = norms.pop()
    verdicts = verify_radii(model, X, y, evaluation.eps, norm=norm, budget=budget,
                            bounds=bounds, seed=seed)
    n = evaluation.clean_correct.size
    robust = np.array([v.verdict == "robust" for v in verdicts])
    broken = np.array([v.verdict == "not_robust" for v in verdicts]) | evaluation.worst_success
    undecided = (~robust & ~broken).sum(axis=1).astype(np.int64)
    return RobustnessBracket(
        eps=tuple(evaluation.eps), clean=evaluation.clean_acc,
        certified=robust.sum(axis=1) / n, upper=(n - broken.sum(axis=1)) / n,
        undecided=undecided,
        attacks={name: np.asarray(r.robust_acc, np.float64)
                 for name, r in evaluation.attacks.items()})
