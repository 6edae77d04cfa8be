"""Diffusion generator benchmark: fitting one class's denoiser, and sampling against
the FLOP floor of its forward passes.

The generator of ``robnp data fit-generator --kind diffusion`` at its defaults: one
EDM denoiser per class, an MLP of 3 inputs (the point, the noise level), three
hidden layers of width 64 and 2 outputs, trained with 4000 Adam steps of 256 rows;
sampled with ``S`` Heun steps, ``2 S - 1`` denoiser forward passes per point.

* ``fit``: ``train_denoiser`` on 256 real points of one spirals class (noise 0.05),
  its seconds and its FLOPs (each step: a forward and a backward pass over 256 rows,
  ``training_step_flops``), best of ``--repeats``.
* ``sample``: ``--n`` points (default 10^6) of one class at ``S = --steps`` (20) with
  the compiled sampler on 1 and on 2 threads (results identical: checked), best of
  ``--repeats``.
* ``floor``: the same forward passes alone, run back to back at the sampler's own
  GEMM shape (chunks of ``ATTACK_CHUNK_ROWS`` = 256 rows) on one thread:
  ``(2 S - 1) * n / 256`` calls of ``kernels.forward``; divided by the threads for
  the two-thread floor. The ratio sampler / floor says how much the sampler adds to
  the network's own arithmetic; the floor's GFLOP/s says how close BLAS runs to the
  core's peak.
* ``numpy``: the plain NumPy sampler (``heun_sample_numpy``, all rows at once) on the
  same ``n`` points, once (``--no-reference`` skips it): what the compiled sampler
  replaced.

Run: ``python benchmarks/bench_diffusion.py [--n 1000000] [--steps 20] [--repeats 3]
[--no-reference]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from robnp import kernels
from robnp.attacks._threat import ATTACK_CHUNK_ROWS
from robnp.data.diffusion import DiffusionOptions, heun_sample, heun_sample_numpy, train_denoiser
from robnp.data.generators import DataTask, real_points
from robnp.flops import forward_flops, training_step_flops
from robnp.threads import single_blas_thread


def best_time(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return min(times), out


@single_blas_thread
def forward_floor(model, n, passes, repeats):
    """Seconds of ``passes * n / 256`` forward passes of 256 rows, one thread."""
    rows = ATTACK_CHUNK_ROWS
    inp = np.random.default_rng(0).standard_normal((rows, model.n_features)).astype(model.dtype)
    acts = np.empty(rows * sum(model.layer_sizes[1:]), model.dtype)
    calls = max(1, round(passes * n / rows))
    sample = min(calls, 20000)

    def run():
        for _ in range(sample):
            kernels.forward(model.params, model.sizes, inp, acts)

    run()
    seconds, _ = best_time(run, repeats)
    return seconds * calls / sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    options = DiffusionOptions(steps=args.steps)
    task = DataTask("spirals", noise=0.05)
    points = real_points(task, 256, 0)[0]
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")

    fit_seconds, (model, mean, sd) = best_time(lambda: train_denoiser(points, options, 0),
                                               args.repeats)
    sizes = model.layer_sizes
    fit_flops = options.train_steps * options.batch_size * training_step_flops(sizes)
    print(f"fit: one class, {options.train_steps} Adam steps of {options.batch_size} rows, "
          f"MLP {sizes}: {fit_seconds:.2f} s, {fit_flops / 1e9:.1f} GFLOP "
          f"({fit_flops / fit_seconds / 1e9:.1f} GFLOP/s)")

    passes = 2 * args.steps - 1
    flops = passes * forward_flops(sizes) * args.n
    print(f"sample: {args.n} points, S = {args.steps} ({passes} forward passes each, "
          f"{forward_flops(sizes)} FLOPs per pass): {flops / 1e9:.1f} GFLOP")
    floor = forward_floor(model, args.n, passes, args.repeats)
    results = {}
    for threads in (1, 2):
        seconds, X = best_time(lambda: heun_sample(model, mean, sd, args.n, args.steps,
                                                   np.random.default_rng(0), threads),
                               args.repeats)
        results[threads] = X
        print(f"  compiled, {threads} thread(s): {seconds:.2f} s ({flops / seconds / 1e9:.1f} "
              f"GFLOP/s); forward-pass floor {floor / threads:.2f} s "
              f"({flops / floor / 1e9:.1f} GFLOP/s per thread); sampler / floor "
              f"{seconds / (floor / threads):.2f}")
    print(f"  identical on 1 and 2 threads: {np.array_equal(results[1], results[2])}")
    if not args.no_reference:
        seconds, X = best_time(lambda: single_blas_thread(heun_sample_numpy)(
            model, mean, sd, args.n, args.steps, np.random.default_rng(0)), 1)
        print(f"  numpy reference, all rows at once: {seconds:.2f} s; largest difference "
              f"from the compiled sampler {np.abs(X - results[1]).max():.2g}")


if __name__ == "__main__":
    main()
