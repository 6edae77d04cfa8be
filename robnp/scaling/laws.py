"""Parametric loss laws of Approaches 2 and 3, in the log space they are fitted in.

Approach 2 (the paper's Eq. 3, the Chinchilla form of Hoffmann et al. 2022
with data-quality terms)::

    L = A / N**alpha + B' / D**beta + E'
    B' = exp(log B + zeta  * log(1 + 1/Q))
    E' = exp(log E + eps_q * log(1 + 1/Q))

Approach 3 (the paper's Eq. 5, a data-quality bottleneck after Kaplan et al.
2020, Eq. 4.1)::

    L = A / N**alpha + (B / D + (Q0 / Q)**(kappa / beta))**beta + E'

with the same E' as Approach 2.  The paper writes E' = E + eps log(1 + 1/Q)
for Eq. 5; robnp uses the multiplicative E' of Eq. 3 for both, so that every
term stays positive for every parameter value and log L is a log-sum-exp
everywhere.  The two agree to first order (eps_additive ~ E * eps_q).

At infinite quality (FID = 0) both reduce to the Chinchilla form
``A/N**alpha + B/D**beta + E``; for Approach 3 the Chinchilla ``B`` is
``B**beta`` (paper, Appendix F.3).

Following Hoffmann et al. (2022, Appendix D.2) the fit works with
``log_A = log A``, ``log_B = log B``, ``log_E = log E`` (and ``log_Q0``) and
predicts ``log L`` as a log-sum-exp of the terms.  Each ``*_log_loss`` function
here is the one implementation of its law: it returns the prediction and a
vector-Jacobian product, written next to the forward pass it differentiates,
that the fitting code uses for the analytic gradient.  Both work on a batch of
S parameter vectors at once so that a multi-start grid is one array operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robnp.errors import DataError

#: Order of the fitted parameter vector of Approach 2.
APPROACH2_PARAMS = ("log_A", "log_B", "log_E", "alpha", "beta", "eps_q", "zeta")
#: Order of the fitted parameter vector of Approach 3.
APPROACH3_PARAMS = ("log_A", "log_B", "log_E", "log_Q0", "alpha", "beta", "kappa", "eps_q")


@dataclass(frozen=True)
class LawInputs:
    """Data-side quantities the laws need, precomputed once per table.

    Attributes
    ----------
    log_N, log_D : ndarray of shape (n_points,)
        Natural logs of parameters and samples.
    log1p_inv_q : ndarray of shape (n_points,)
        ``log(1 + 1/Q)``; 0 at infinite quality.
    log_q : ndarray of shape (n_points,)
        ``log Q``; ``+inf`` at infinite quality.
    """

    log_N: np.ndarray
    log_D: np.ndarray
    log1p_inv_q: np.ndarray
    log_q: np.ndarray

    def __post_init__(self):
        # Design rows of the three log-linear terms of Approach 2, built once
        # here rather than in every objective evaluation.
        ones = np.ones_like(self.log_N)
        object.__setattr__(self, "_design", (
            np.stack([ones, -self.log_N]),
            np.stack([ones, -self.log_D, self.log1p_inv_q]),
            np.stack([ones, self.log1p_inv_q]),
        ))

    @classmethod
    def from_arrays(cls, N, D, quality=np.inf) -> "LawInputs":
        """Broadcast N, D and quality to one shape, check them, take logs.

        Raises
        ------
        DataError
            If any N, D or quality is NaN or not positive.
        """
        N, D, Q = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (N, D, quality)))
        for name, arr, allow_inf in (("N", N, False), ("D", D, False), ("quality", Q, True)):
            ok = (arr > 0) & (np.isfinite(arr) | allow_inf)
            if not np.all(ok):
                bad = arr.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]]
                raise DataError(f"{name} must be > 0{'' if allow_inf else ' and finite'}, got {float(bad)!r}")
        Q = Q.reshape(-1)
        with np.errstate(divide="ignore"):
            return cls(log_N=np.log(N).reshape(-1), log_D=np.log(D).reshape(-1),
                       log1p_inv_q=np.log1p(1.0 / Q), log_q=np.log(Q))

    @classmethod
    def from_logs(cls, log_N, log_D, quality) -> "LawInputs":
        """Inputs from logs of N and D and one quality, without checks (internal use)."""
        q = float(quality)
        log_N = np.asarray(log_N, dtype=np.float64)
        return cls(log_N=log_N, log_D=np.asarray(log_D, dtype=np.float64),
                   log1p_inv_q=np.full(log_N.shape, np.log1p(1.0 / q)),
                   log_q=np.full(log_N.shape, np.log(q)))

    def take(self, rows) -> "LawInputs":
        """The inputs of the given rows."""
        return LawInputs(self.log_N[rows], self.log_D[rows], self.log1p_inv_q[rows], self.log_q[rows])

    def relative_to_quality(self, quality: float) -> "LawInputs":
        """Inputs whose quality term is measured from ``quality``.

        Replacing ``log(1 + 1/Q)`` by ``log(1 + 1/Q) - log(1 + 1/Q_ref)`` turns
        ``log B`` and ``log E`` of Approach 2 into the constants *at* Q_ref;
        the two-stage fit uses this to keep its first stage fixed.
        """
        return LawInputs(self.log_N, self.log_D, self.log1p_inv_q - np.log1p(1.0 / quality), self.log_q)


def _exp_or_zero(z):
    """exp(z) for z <= 0, with exact 0 below -700.

    Below about -708 exp returns subnormal numbers, which x86 processors
    compute some hundred times slower; terms that small are far below float64
    resolution next to the largest term (which is exp(0) = 1) anyway.
    """
    out = np.zeros_like(z)
    np.exp(z, out=out, where=z > -700.0)
    return out


def _logsumexp(*terms):
    """log(sum(exp(t))) of same-shape arrays and the softmax weights of each term.

    The weights are d(logsumexp)/d(term); a term equal to ``-inf`` gets weight 0.
    """
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [_exp_or_zero(t - m) for t in terms]
    total = exps[0].copy()
    for x in exps[1:]:
        total += x
    inv_total = 1.0 / total
    return m + np.log(total), [x * inv_total for x in exps]


def _columns(theta, n_params):
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if theta.shape[1] != n_params:
        raise ValueError(f"theta must have {n_params} columns, got shape {theta.shape}")
    return [theta[:, j:j + 1] for j in range(n_params)]


def approach2_log_loss(theta, x: LawInputs):
    """log L of Approach 2 for a batch of parameter vectors.

    Parameters
    ----------
    theta : ndarray of shape (S, 7)
        Rows ``(log_A, log_B, log_E, alpha, beta, eps_q, zeta)``.
    x : LawInputs
        n_points data points.

    Returns
    -------
    log_loss : ndarray of shape (S, n_points)
    vjp : callable
        ``vjp(v)`` with ``v`` of shape (S, n_points) returns
        ``sum_i v[s, i] * d log_loss[s, i] / d theta[s]``, shape (S, 7).
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if theta.shape[1] != 7:
        raise ValueError(f"theta must have 7 columns, got shape {theta.shape}")
    u = x.log1p_inv_q
    design_model, design_data, design_floor = x._design
    # Each term is linear in its parameters, so a batch of terms is one
    # matrix product (S, k) @ (k, n): far faster than broadcasting (S, 1)
    # against (n,) element by element.
    t_model = theta[:, [0, 3]] @ design_model       # log(A / N^alpha)   = log_A - alpha log N
    t_data = theta[:, [1, 4, 6]] @ design_data      # log(B' / D^beta)   = log_B - beta log D + zeta u
    t_floor = theta[:, [2, 5]] @ design_floor       # log E'             = log_E + eps_q u
    log_loss, (w_model, w_data, w_floor) = _logsumexp(t_model, t_data, t_floor)

    def vjp(v):
        g_model, g_data, g_floor = v * w_model, v * w_data, v * w_floor
        return np.stack([
            g_model.sum(axis=1),          # d/d log_A
            g_data.sum(axis=1),           # d/d log_B
            g_floor.sum(axis=1),          # d/d log_E
            -(g_model @ x.log_N),         # d/d alpha
            -(g_data @ x.log_D),          # d/d beta
            g_floor @ u,                  # d/d eps_q
            g_data @ u,                   # d/d zeta
        ], axis=1)

    return log_loss, vjp


def approach3_log_loss(theta, x: LawInputs):
    """log L of Approach 3 for a batch of parameter vectors.

    Parameters
    ----------
    theta : ndarray of shape (S, 8)
        Rows ``(log_A, log_B, log_E, log_Q0, alpha, beta, kappa, eps_q)``;
        ``beta`` must be > 0.
    x : LawInputs
        n_points data points.

    Returns
    -------
    log_loss : ndarray of shape (S, n_points)
    vjp : callable
        As for :func:`approach2_log_loss`, returning shape (S, 8).
    """
    log_A, log_B, log_E, log_Q0, alpha, beta, kappa, eps_q = _columns(theta, 8)
    finite_q = np.isfinite(x.log_q)
    # At infinite quality the bottleneck term (Q0/Q)^(kappa/beta) is exactly 0;
    # masking keeps inf * 0 out of both the value and the gradient.
    dq = np.where(finite_q, log_Q0 - np.where(finite_q, x.log_q, 0.0), 0.0)   # log(Q0/Q)
    z_data = log_B - x.log_D                                                  # log(B/D)
    z_bneck = np.where(finite_q, kappa / beta * dq, -np.inf)                  # log((Q0/Q)^(kappa/beta))
    z_data = np.broadcast_to(z_data, z_bneck.shape)
    log_inner, (v_data, v_bneck) = _logsumexp(z_data, z_bneck)               # log(B/D + (Q0/Q)^(k/b))
    t_model = log_A - alpha * x.log_N
    t_data = beta * log_inner
    t_floor = np.broadcast_to(log_E + eps_q * x.log1p_inv_q, t_model.shape)
    log_loss, (w_model, w_data, w_floor) = _logsumexp(t_model, t_data, t_floor)

    def vjp(v):
        g_model, g_data, g_floor = v * w_model, v * w_data, v * w_floor
        z_bneck_finite = np.where(finite_q, z_bneck, 0.0)
        return np.stack([
            g_model.sum(axis=1),                                   # d/d log_A
            (g_data * beta * v_data).sum(axis=1),                  # d/d log_B
            g_floor.sum(axis=1),                                   # d/d log_E
            (g_data * kappa * v_bneck).sum(axis=1),                # d/d log_Q0
            -(g_model @ x.log_N),                                  # d/d alpha
            # t_data = beta * log_inner(z_bneck(beta)), dz_bneck/dbeta = -z_bneck/beta
            (g_data * (log_inner - v_bneck * z_bneck_finite)).sum(axis=1),  # d/d beta
            (g_data * v_bneck * dq).sum(axis=1),                   # d/d kappa
            g_floor @ x.log1p_inv_q,                               # d/d eps_q
        ], axis=1)

    return log_loss, vjp


@dataclass(frozen=True)
class Approach2Law:
    """Approach 2: the Chinchilla form with data-quality terms (paper, Eq. 3).

    Parameters are named as in the paper; ``eps_q`` is its epsilon.  All
    methods return float64 arrays broadcast over their inputs.
    """

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    eps_q: float = 0.0
    zeta: float = 0.0

    PARAMS = ("A", "B", "E", "alpha", "beta", "eps_q", "zeta")
    log_loss_fn = staticmethod(approach2_log_loss)

    def theta(self) -> np.ndarray:
        """The fitted vector ``(log_A, log_B, log_E, alpha, beta, eps_q, zeta)``, shape (7,)."""
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E),
                         self.alpha, self.beta, self.eps_q, self.zeta])

    @classmethod
    def from_theta(cls, theta) -> "Approach2Law":
        t = np.asarray(theta, dtype=np.float64)
        return cls(A=float(np.exp(t[0])), B=float(np.exp(t[1])), E=float(np.exp(t[2])),
                   alpha=float(t[3]), beta=float(t[4]), eps_q=float(t[5]), zeta=float(t[6]))

    def params(self) -> dict:
        return {name: getattr(self, name) for name in self.PARAMS}

    def loss(self, N, D, quality=np.inf) -> np.ndarray:
        """Predicted loss, broadcast over N, D and quality."""
        shape = np.broadcast_shapes(np.shape(N), np.shape(D), np.shape(quality))
        log_loss, _ = approach2_log_loss(self.theta()[None], LawInputs.from_arrays(N, D, quality))
        return np.exp(log_loss[0]).reshape(shape)

    def B_eff(self, quality=np.inf):
        """B' at the given quality."""
        return np.exp(np.log(self.B) + self.zeta * np.log1p(1.0 / np.asarray(quality, dtype=float)))

    def E_eff(self, quality=np.inf):
        """E' at the given quality: the irreducible loss with that data."""
        return np.exp(np.log(self.E) + self.eps_q * np.log1p(1.0 / np.asarray(quality, dtype=float)))

    @property
    def a(self) -> float:
        """Exponent of N* ~ FLOPs^a: beta / (alpha + beta) (paper, Eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D* ~ FLOPs^b: alpha / (alpha + beta) (paper, Eq. 4)."""
        return self.alpha / (self.alpha + self.beta)

    def G(self, quality=np.inf):
        """G = (alpha A / (beta B'))^(1 / (alpha + beta)) of the paper's Eq. 4."""
        return (self.alpha * self.A / (self.beta * self.B_eff(quality))) ** (1.0 / (self.alpha + self.beta))

    def loss_data_limit(self, N, quality=np.inf):
        """Loss with unlimited data, ``A/N^alpha + E'``."""
        return self.A / np.asarray(N, dtype=float) ** self.alpha + self.E_eff(quality)


@dataclass(frozen=True)
class Approach3Law:
    """Approach 3: the data-quality bottleneck law (paper, Eq. 5).

    At infinite quality this is the Chinchilla form with B replaced by
    ``B**beta`` (:meth:`chinchilla_B`).
    """

    A: float
    B: float
    E: float
    Q0: float
    alpha: float
    beta: float
    kappa: float
    eps_q: float = 0.0

    PARAMS = ("A", "B", "E", "Q0", "alpha", "beta", "kappa", "eps_q")
    log_loss_fn = staticmethod(approach3_log_loss)

    def theta(self) -> np.ndarray:
        """The fitted vector ``(log_A, log_B, log_E, log_Q0, alpha, beta, kappa, eps_q)``, shape (8,)."""
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), np.log(self.Q0),
                         self.alpha, self.beta, self.kappa, self.eps_q])

    @classmethod
    def from_theta(cls, theta) -> "Approach3Law":
        t = np.asarray(theta, dtype=np.float64)
        return cls(A=float(np.exp(t[0])), B=float(np.exp(t[1])), E=float(np.exp(t[2])),
                   Q0=float(np.exp(t[3])), alpha=float(t[4]), beta=float(t[5]),
                   kappa=float(t[6]), eps_q=float(t[7]))

    def params(self) -> dict:
        return {name: getattr(self, name) for name in self.PARAMS}

    def loss(self, N, D, quality=np.inf) -> np.ndarray:
        """Predicted loss, broadcast over N, D and quality."""
        shape = np.broadcast_shapes(np.shape(N), np.shape(D), np.shape(quality))
        log_loss, _ = approach3_log_loss(self.theta()[None], LawInputs.from_arrays(N, D, quality))
        return np.exp(log_loss[0]).reshape(shape)

    def E_eff(self, quality=np.inf):
        """E' at the given quality."""
        return np.exp(np.log(self.E) + self.eps_q * np.log1p(1.0 / np.asarray(quality, dtype=float)))

    @property
    def chinchilla_B(self) -> float:
        """The B of the Chinchilla form this law reduces to at infinite quality: B**beta."""
        return self.B ** self.beta

    @property
    def a(self) -> float:
        """a = beta / (alpha + beta), exact at infinite quality only."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """b = alpha / (alpha + beta), exact at infinite quality only."""
        return self.alpha / (self.alpha + self.beta)

    def loss_data_limit(self, N, quality=np.inf):
        """Loss with unlimited data, ``A/N^alpha + (Q0/Q)^kappa + E'``."""
        q = np.asarray(quality, dtype=float)
        bottleneck = np.where(np.isinf(q), 0.0, (self.Q0 / np.where(np.isinf(q), 1.0, q)) ** self.kappa)
        return self.A / np.asarray(N, dtype=float) ** self.alpha + bottleneck + self.E_eff(quality)
