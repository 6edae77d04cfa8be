"""A denoising diffusion model per class, the paper's generator, on robnp's engine.

Karras et al. (2022), "Elucidating the design space of diffusion-based generative
models" (EDM), with their preconditioning, training noise distribution and
deterministic Heun sampler (their Algorithm 1 without churn):

* **Denoiser.** ``D(x; sigma) = c_skip x + c_out F([c_in x, c_noise])`` with
  ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
  ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma) / 4``; ``F`` is a ReLU
  :class:`robnp.MLP` taking ``input_dim + 1`` inputs and giving ``input_dim`` outputs;
  ``sd`` (sigma_data) is the root mean square of the class's real points about their
  mean, which is subtracted before and added after.
* **Training.** ``ln sigma ~ N(P_mean = -1.2, P_std = 1.2)``; a real point ``y``,
  ``x = y + sigma n``; EDM's weighting ``lambda = 1 / c_out^2`` makes the loss the
  plain regression ``|F(c_in x, c_noise) - (y - c_skip x) / c_out|^2`` of
  :func:`regression_loss_and_grad` (a new loss: the mean over rows of the squared
  error, its gradient through the MLP's own backward pass, checked by finite
  differences in the tests), minimised with :class:`robnp.training.optim.Adam` under a
  cosine step size, in minibatches drawn with replacement from the ``m`` points.
* **Sampling.** ``S`` noise levels ``sigma_i = (sigma_max^(1/rho) + i / (S - 1)
  (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` (``sigma_min = 0.002``,
  ``sigma_max = 80``, ``rho = 7``) and ``sigma_S = 0``; ``x_0 ~ N(0, sigma_0^2 I)``;
  each step an Euler step of the probability-flow ODE ``dx/dsigma = (x - D(x;
  sigma)) / sigma`` corrected by the trapezoid rule (Heun) except the last: ``2 S - 1``
  denoiser evaluations. Fewer steps give worse samples.

Importing this module registers the kind ``"diffusion"`` (its options: ``steps``, the
sampler's ``S``; the denoiser's ``width``, ``depth``, ``train_steps``, ``batch_size``,
``lr``). It needs the model and the training building blocks, so it sits with
:mod:`robnp.data.quality` above the training loop; :mod:`robnp.data.quality` imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import _checks, kernels
from ..attacks._threat import over_chunks
from ..errors import DataError
from ..flops import forward_flops
from ..model import MLP
from ..threads import single_blas_thread
from ..training.optim import Adam
from ..training.schedules import Cosine
from .generators import (Generator, GeneratorKind, GeneratorOptions, child_seed,
                         real_points, register_generator)

__all__ = ["EDM", "DiffusionOptions", "DiffusionGenerator", "regression_loss_and_grad",
           "noise_levels", "train_denoiser"]

#: EDM's constants (Karras et al. 2022, Table 1, the CIFAR-10 settings).
EDM = {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "p_mean": -1.2, "p_std": 1.2}


@dataclass(frozen=True)
class DiffusionOptions(GeneratorOptions):
    """steps: the sampler's S; width, depth: the denoiser MLP's hidden layers;
    train_steps, batch_size, lr: its Adam training (cosine step size to 0)."""

    steps: int = 20
    width: int = 64
    depth: int = 3
    train_steps: int = 4000
    batch_size: int = 256
    lr: float = 2e-3
    constraints: ClassVar = {"steps": _checks.Integer(1), "width": _checks.Integer(1),
                             "depth": _checks.Integer(1),
                             "train_steps": _checks.Integer(1),
                             "batch_size": _checks.Integer(1),
                             "lr": _checks.Real(0, low_open=True)}


@single_blas_thread
def regression_loss_and_grad(model: MLP, X, T, want_grad: bool = True):
    """The mean over rows of ``|F(x) - t|^2`` (``F`` the model's output layer, no
    softmax) and its gradient in the parameters.

    Returns
    -------
    loss : float
    grad : ndarray like ``model.params`` (None unless ``want_grad``)
    """
    X = model.check_input(X)
    T = np.asarray(T)
    if T.shape != (X.shape[0], model.n_classes):
        raise DataError(f"T must have shape ({X.shape[0]}, {model.n_classes}), got {T.shape}")
    ws = model.workspace(X.shape[0])
    Z = kernels.forward(model.params, model.sizes, X, ws.acts)
    R = Z - T.astype(model.dtype)
    loss = float(np.square(R, dtype=np.float64).sum() / X.shape[0])
    if not want_grad:
        return loss, None
    ws.dZ[:] = R * (2.0 / X.shape[0])
    grad = np.zeros_like(model.params)
    kernels.backward_params(model.params, model.sizes, X, ws.acts, ws.dZ, grad, ws.d0, ws.d1)
    return loss, grad


def _preconditioning(sigma: np.ndarray, sd: float):
    total = sigma * sigma + sd * sd
    return (sd * sd / total, sigma * sd / np.sqrt(total), 1.0 / np.sqrt(total),
            np.log(sigma) / 4)


def _net_input(x, c_in, c_noise):
    return np.column_stack([c_in[:, None] * x, c_noise])


@single_blas_thread
def _denoise(model: MLP, x: np.ndarray, sigma: float, sd: float) -> np.ndarray:
    s = np.full(len(x), sigma)
    c_skip, c_out, c_in, c_noise = _preconditioning(s, sd)
    inp = np.ascontiguousarray(_net_input(x, c_in, c_noise), dtype=model.dtype)
    ws = model.workspace(len(x))
    F = kernels.forward(model.params, model.sizes, inp, ws.acts).astype(np.float64)
    return c_skip[:, None] * x + c_out[:, None] * F


def train_denoiser(points: np.ndarray, options: DiffusionOptions, seed: int):
    """EDM's training of one class's denoiser (module docstring).

    Returns
    -------
    model : MLP
    mean : ndarray (input_dim,)
    sd : float
        The points' mean and sigma_data.
    """
    points = np.asarray(points, dtype=np.float64)
    m, d = points.shape
    mean = points.mean(axis=0)
    Y = points - mean
    sd = float(np.sqrt(np.mean(Y * Y))) or 1.0
    rng = np.random.default_rng(seed)
    model = MLP(d + 1, (options.width,) * options.depth, d, seed=rng)
    adam = Adam(model.n_params, model.dtype, lr=options.lr)
    schedule = Cosine(options.lr)
    B = options.batch_size
    for step in range(options.train_steps):
        y = Y[rng.integers(m, size=B)]
        sigma = np.exp(EDM["p_mean"] + EDM["p_std"] * rng.standard_normal(B))
        x = y + sigma[:, None] * rng.standard_normal((B, d))
        c_skip, c_out, c_in, c_noise = _preconditioning(sigma, sd)
        target = (y - c_skip[:, None] * x) / c_out[:, None]
        _, grad = regression_loss_and_grad(model, _net_input(x, c_in, c_noise), target)
        adam.step(model.params, grad, lr=schedule.lr_at(step, options.train_steps))
    return model, mean, sd


def noise_levels(steps: int) -> np.ndarray:
    """EDM's ``steps`` noise levels followed by 0 (module docstring)."""
    steps = _checks.integer("steps", steps, 1)
    lo, hi, rho = EDM["sigma_min"] ** (1 / EDM["rho"]), EDM["sigma_max"] ** (1 / EDM["rho"]), \
        EDM["rho"]
    i = np.arange(steps)
    frac = i / (steps - 1) if steps > 1 else np.zeros(1)
    return np.append((hi + frac * (lo - hi)) ** rho, 0.0)


@single_blas_thread
def heun_sample(model: MLP, mean, sd: float, n: int, steps: int,
                rng: np.random.Generator, n_threads: int | None = None) -> np.ndarray:
    """``n`` samples of one class by EDM's deterministic Heun sampler (float64).

    The starting points are drawn from ``rng`` at once; each fixed chunk of
    ``ATTACK_CHUNK_ROWS`` rows then runs its whole trajectory in one compiled call
    (:func:`robnp.kernels.heun_trajectory`: the ``2 S - 1`` forward passes in the
    network's dtype, the ODE in float64, the chunk's activations in cache), chunks
    spread over ``n_threads`` threads (None: decided by the work, as the attacks do;
    results are the same for any count). :func:`heun_sample_numpy` is the same
    sampler written plainly.
    """
    sigmas = noise_levels(steps)
    d = len(mean)
    x = sigmas[0] * rng.standard_normal((n, d))
    sizes, params = model.sizes, model.params
    widths = int(sum(model.layer_sizes[1:]))

    def work(start, stop):
        rows = stop - start
        chunk = np.ascontiguousarray(x[start:stop])
        kernels.heun_trajectory(params, sizes, chunk, sigmas, float(sd),
                                np.empty((rows, d + 1), model.dtype),
                                np.empty(rows * widths, model.dtype), np.empty((rows, d)),
                                np.empty((rows, d)), np.empty((rows, d)))
        x[start:stop] = chunk

    over_chunks(work, n, n_threads, (2 * steps - 1) * forward_flops(model.layer_sizes))
    return x + mean


def heun_sample_numpy(model: MLP, mean, sd: float, n: int, steps: int,
                      rng: np.random.Generator) -> np.ndarray:
    """:func:`heun_sample` in NumPy, all rows at once (the slow, obvious reference)."""
    sigmas = noise_levels(steps)
    x = sigmas[0] * rng.standard_normal((n, len(mean)))
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        slope = (x - _denoise(model, x, s, sd)) / s
        x_next = x + (s_next - s) * slope
        if s_next > 0:
            slope_next = (x_next - _denoise(model, x_next, s_next, sd)) / s_next
            x_next = x + (s_next - s) * 0.5 * (slope + slope_next)
        x = x_next
    return x + mean


class DiffusionGenerator(Generator):
    """One EDM denoiser per class, sampled with ``options.steps`` Heun steps."""

    kind = "diffusion"
    shown_knobs = ("steps",)

    def __init__(self, task, options, m, seed, models, means, sds):
        super().__init__(task, options, m, seed)
        self.models, self.means, self.sds = list(models), [np.asarray(v) for v in means], \
            [float(v) for v in sds]

    def with_steps(self, steps: int) -> "DiffusionGenerator":
        """The same denoisers sampled with ``steps`` Heun steps (nothing refitted)."""
        options = dataclasses.replace(self.options, steps=steps)
        return DiffusionGenerator(self.task, options, self.m, self.seed, self.models,
                                  self.means, self.sds)

    def arrays(self):
        out = {}
        for k, (model, mean, sd) in enumerate(zip(self.models, self.means, self.sds)):
            out[f"params_{k}"] = model.params
            out[f"mean_{k}"] = mean
            out[f"sd_{k}"] = np.array(sd)
        return out

    def class_rows(self, counts, seed):
        return [heun_sample(model, mean, sd, int(c), self.options.steps,
                            np.random.default_rng(child_seed(seed, 5, k)))
                for k, (c, model, mean, sd) in enumerate(zip(counts, self.models,
                                                             self.means, self.sds))]


def _sizes(task, options):
    return (task.input_dim + 1, *(options.width,) * options.depth, task.input_dim)


def _build(task, m, seed, options):
    fitted = [train_denoiser(points, options, child_seed(seed, 6, k))
              for k, points in enumerate(real_points(task, m, seed))]
    return DiffusionGenerator(task, options, m, seed, *zip(*fitted))


def _restore(task, m, seed, options, arrays):
    models, means, sds = [], [], []
    sizes = _sizes(task, options)
    for k in range(task.n_classes):
        for name in (f"params_{k}", f"mean_{k}", f"sd_{k}"):
            if name not in arrays:
                raise DataError(f"missing array {name!r}")
            if arrays[name].dtype.kind != "f" or not np.isfinite(arrays[name]).all():
                raise DataError(f"array {name!r} must hold finite floats")
        models.append(MLP.from_params(sizes, arrays[f"params_{k}"]))
        if arrays[f"mean_{k}"].shape != (task.input_dim,) or arrays[f"sd_{k}"].shape != ():
            raise DataError(f"arrays mean_{k}, sd_{k} have the wrong shapes")
        means.append(arrays[f"mean_{k}"])
        sds.append(float(arrays[f"sd_{k}"]))
    return DiffusionGenerator(task, options, m, seed, models, means, sds)


register_generator(GeneratorKind("diffusion", DiffusionOptions, _build, _restore, True,
                                 "one EDM denoiser per class (Karras et al. 2022), "
                                 "sampled with S Heun steps"))
