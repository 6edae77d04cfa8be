"""Threads benchmark: every single-process entry point at width 512 on one thread and
on two, and the work per chunk above which a second thread pays.

For the study's net (2 inputs, two hidden layers of width 512, 2 classes) on circles
(seed 42, 2000 points, the study's split: 1600 training and 400 test points):

* ``train``: one TRADES epoch (``robnp.fit(..., recipe="trades", train_eps=0.1,
  max_epochs=1, patience=None)``: minibatches of 256 rows, four chunks of 64);
* ``attack``: PGD-10 at five radii (0.01, 0.05, 0.1, 0.2, 0.5) on the 400 test points
  (``robnp.evaluate(model, X, y, radii, ["pgd"])``: 2000 rows, eight chunks);
* ``verify``: ``robnp.verify.verify_radii`` on the 400 test points at eps 0.05 and 0.1
  (its attacks run in chunks of rows on threads, and its bound propagation in fixed
  chunks of points and of branch and bound's boxes, NumPy on one BLAS thread per
  chunk);

each with ``n_threads`` 1 and 2 (``default_threads``, as ``--threads`` sets it), the
best of ``--repeats`` runs after a warm-up, one and two threads alternating (the machine
is shared: the best run is the least disturbed), and whether the results are identical.
``--threshold`` times PGD-10 on 8 chunks of 256 rows at widths 4 to 64 on one and two
threads: the chunk work (FLOPs) where two threads start to pay is
``robnp.attacks._threat.MIN_FLOPS_PER_CHUNK``. ``--torch`` times the same PGD and
TRADES epoch written in PyTorch (float32, ``torch.set_num_threads`` 1 and 2), when
torch is installed.

Run: ``python benchmarks/bench_threads.py [--repeats 5] [--threshold] [--torch]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import robnp
from robnp.attacks._threat import ATTACK_CHUNK_ROWS, available_cores, default_threads
from robnp.data import make_dataset, train_test_split
from robnp.flops import forward_flops
from robnp.verify import verify_radii

RADII = (0.01, 0.05, 0.1, 0.2, 0.5)


def median_time(call, repeats):
    call()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_times(one, two, repeats):
    """Best of ``repeats`` runs of each, alternating one thread and two, so that load
    from other processes falls on both alike; the best run is the one the machine
    least disturbed."""
    one(), two()  # warm-up
    times = ([], [])
    for _ in range(repeats):
        for call, found in zip((one, two), times):
            start = time.perf_counter()
            call()
            found.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def entry_points(width, repeats):
    X, y = make_dataset("circles", 2000, 0.15, 42)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.2)
    base = robnp.MLP(2, (width, width), 2, seed=42)
    trained = base.copy()
    robnp.fit(trained, X_train, y_train, max_epochs=30)

    def train(n):
        model = base.copy()
        robnp.fit(model, X_train, y_train, recipe="trades", train_eps=0.1, max_epochs=1,
                  patience=None, n_threads=n)
        return model.params

    def attack(n):
        with default_threads(n):
            evaluation = robnp.evaluate(trained, X_test, y_test, RADII, ["pgd"], seed=42)
        return np.stack(evaluation.attacks["pgd"].adversarial)

    def verify(n):
        with default_threads(n):
            results = verify_radii(trained, X_test, y_test, (0.05, 0.1), budget=256, seed=42)
        return np.array([[r.count(v) for v in ("robust", "not_robust", "undecided")]
                         for r in results])

    rows = []
    for name, call in (("train (TRADES epoch)", train), ("attack (PGD-10 x 5 eps)", attack),
                       ("verify (2 eps)", verify)):
        one, two = call(1), call(2)
        t1, t2 = paired_times(lambda: call(1), lambda: call(2), repeats)
        rows.append((name, t1, t2, bool(np.array_equal(one, two))))
    return rows


def threshold(repeats):
    rng = np.random.default_rng(0)
    rows = []
    for width in (4, 8, 16, 32, 64):
        model = robnp.MLP(2, (width, width), 2, seed=0)
        X = rng.normal(size=(8 * ATTACK_CHUNK_ROWS, 2)).astype(np.float32)
        y = model.predict(X)
        times = paired_times(lambda: robnp.pgd(model, X, y, 0.1, steps=10, n_threads=1),
                             lambda: robnp.pgd(model, X, y, 0.1, steps=10, n_threads=2),
                             repeats)
        chunk = ATTACK_CHUNK_ROWS * 3 * 10 * forward_flops(model.layer_sizes)
        rows.append((width, chunk, *times))
    return rows


def torch_rows(width, repeats):
    import torch

    X, y = make_dataset("circles", 2000, 0.15, 42)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.2)
    net = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(),
                              torch.nn.Linear(width, width), torch.nn.ReLU(),
                              torch.nn.Linear(width, 2))
    Xt, yt = torch.tensor(X_test), torch.tensor(y_test)
    Xtr, ytr = torch.tensor(X_train), torch.tensor(y_train)
    loss_fn = torch.nn.CrossEntropyLoss()

    def pgd():
        for eps in RADII:
            x = Xt.clone()
            for _ in range(10):
                x.requires_grad_(True)
                loss = loss_fn(net(x), yt)
                (grad,) = torch.autograd.grad(loss, x)
                with torch.no_grad():
                    x = torch.min(torch.max(x + eps / 4 * grad.sign(), Xt - eps), Xt + eps)

    def trades_epoch():
        optimizer = torch.optim.Adam(net.parameters(), 1e-3)
        kl = torch.nn.KLDivLoss(reduction="batchmean")
        order = torch.randperm(Xtr.shape[0])
        for start in range(0, Xtr.shape[0], 256):
            xb, yb = Xtr[order[start:start + 256]], ytr[order[start:start + 256]]
            with torch.no_grad():
                p_clean = torch.softmax(net(xb), 1)
            x = xb + 0.001 * torch.randn_like(xb)
            for _ in range(10):
                x.requires_grad_(True)
                loss = kl(torch.log_softmax(net(x), 1), p_clean)
                (grad,) = torch.autograd.grad(loss, x)
                with torch.no_grad():
                    x = torch.min(torch.max(x + 0.025 * grad.sign(), xb - 0.1), xb + 0.1)
            optimizer.zero_grad()
            logits = net(xb)
            loss = loss_fn(logits, yb) + 6.0 * kl(torch.log_softmax(net(x.detach()), 1),
                                                  torch.softmax(logits, 1))
            loss.backward()
            optimizer.step()

    rows = []
    for name, call in (("train (TRADES epoch)", trades_epoch),
                       ("attack (PGD-10 x 5 eps)", pgd)):
        def on(n, call=call):
            torch.set_num_threads(n)
            call()

        rows.append((name, *paired_times(lambda: on(1), lambda: on(2), repeats)))
    return torch.__version__, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--threshold", action="store_true")
    parser.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {available_cores()} cores, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    if args.threshold:
        print("PGD-10 on 8 chunks of 256 rows: width, FLOPs per chunk, 1 thread, 2 threads")
        for width, chunk, t1, t2 in threshold(args.repeats):
            print(f"  {width:>4} {chunk:>12.3g} {t1 * 1e3:>9.2f} ms {t2 * 1e3:>9.2f} ms "
                  f"{t1 / t2:>6.2f}x")
    print(f"width {args.width}: entry point, 1 thread, 2 threads, speed-up, identical")
    for name, t1, t2, same in entry_points(args.width, args.repeats):
        print(f"  {name:<26} {t1 * 1e3:>9.1f} ms {t2 * 1e3:>9.1f} ms {t1 / t2:>6.2f}x  {same}")
    if args.torch:
        version, rows = torch_rows(args.width, args.repeats)
        print(f"PyTorch {version}, width {args.width}: 1 thread, 2 threads")
        for name, t1, t2 in rows:
            print(f"  {name:<26} {t1 * 1e3:>9.1f} ms {t2 * 1e3:>9.1f} ms {t1 / t2:>6.2f}x")


if __name__ == "__main__":
    main()
