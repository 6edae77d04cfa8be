"""The robustness ceiling of fresh samples of growing size, against the Bayes accuracy.

For one dataset, draws one sample per size, computes its robustness ceiling at
every radius (:func:`robnp.verify.population_ceiling`), prints the table with the
generator's exact Bayes accuracy (:func:`robnp.data.bayes.bayes_error`), and saves
the figure of ceiling against sample size.

Run: ``python benchmarks/population_ceiling.py [--dataset circles] [--noise 0.15]
[--eps 0,0.05,0.1,0.2] [--sizes 250,500,1000,2000,4000,8000] [--norm linf]
[--out population_ceiling.png]``.
"""

from __future__ import annotations

import argparse
import time

from robnp._io import atomic_savefig
from robnp.data.bayes import bayes_error
from robnp.verify import ceiling_figure, population_ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="circles")
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--n-classes", type=int, default=None)
    parser.add_argument("--eps", default="0,0.05,0.1,0.2")
    parser.add_argument("--sizes", default="250,500,1000,2000,4000,8000")
    parser.add_argument("--norm", default="linf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="population_ceiling.png")
    args = parser.parse_args()
    eps = [float(e) for e in args.eps.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    start = time.perf_counter()
    result = population_ceiling(args.dataset, eps, sizes=sizes, seed=args.seed,
                                norm=args.norm, noise=args.noise, n_classes=args.n_classes)
    elapsed = time.perf_counter() - start
    # The Bayes accuracy of the largest sample's generator (moons' arcs depend on n).
    bayes_acc = 1 - bayes_error(args.dataset, n_samples=sizes[-1], noise=args.noise,
                                n_classes=args.n_classes)
    print(f"{args.dataset}, noise {args.noise}, {args.norm} ball; Bayes accuracy "
          f"{bayes_acc:.4f}; {elapsed:.1f} s")
    print("    size  " + "  ".join(f"eps={e:<6g}" for e in eps))
    for size, row in zip(result.sizes, result.ceilings):
        print(f"  {size:6d}  " + "  ".join(f"{c:10.4f}" for c in row))
    atomic_savefig(ceiling_figure(result, bayes_accuracy=bayes_acc), args.out, dpi=120)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
