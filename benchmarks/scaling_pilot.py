"""The pilot behind the scaling study's recipe rules and quality measure.

Two measurements on the small preset's task (spheres, input_dim 20, noise 0.1, eps
0.03, two hidden layers, TRADES beta 5 with 10 steps of eps/4 and label smoothing 0.1,
one-cycle, weight average 0.995, the TRADES test loss against pgd-cw-40 on 2000 true
test points, as every run of the study is evaluated):

* ``recipe``: the optimizer and step size (SGD with Nesterov 0.9 and weight decay
  5e-4 at several step sizes, Adam at 1e-3 and 3e-3), and the batch size at the
  largest D, at widths and data sizes of the preset;
* ``quality``: kernel densities fitted to m real points per class at bandwidth h:
  their FID analogue, conditional W1 (and the truth's own W1, the floor), and the
  test loss and robust accuracy of a width-256 model trained on 16,384 and 131,072
  examples of each.

Run: ``python benchmarks/scaling_pilot.py [recipe|quality]`` (both by default); it
prints one line per run. Results are independent of the machine (only the seconds
column is not).
"""

from __future__ import annotations

import sys
import time

from robnp.data.quality import conditional_w1, fid, true_generator
from robnp.scaling.run import fit_sources
from robnp.scaling.study import ScalingConfig

RECIPES = [
    # (optimizer, lr, widths, data sizes, batch_from)
    ("adam", 3e-3, (32, 256), (16384, 65536), 262144),
    ("adam", 1e-3, (32, 256), (16384, 65536), 262144),
    ("sgd", 0.03, (32,), (16384, 65536), 262144),
    ("sgd", 0.1, (32, 256), (16384, 65536), 262144),
    ("sgd", 0.3, (32, 256), (16384, 65536), 262144),
    ("sgd", 0.5, (32, 256), (16384, 65536), 262144),
    ("sgd", 1.0, (32, 256), (16384, 65536), 262144),
    ("sgd", 0.3, (256,), (262144,), 262144),
    ("sgd", 0.3, (256,), (262144,), 65536),
    ("sgd", 0.5, (256,), (262144,), 262144),
    ("sgd", 1.0, (256,), (262144,), 262144),
    ("adam", 3e-3, (256,), (262144,), 262144),
    ("sgd", 0.5, (8,), (4096, 262144), 262144),
    ("adam", 3e-3, (8,), (4096, 262144), 262144),
]

SOURCES = ("true", "kde:m=2048,h=0.1", "kde:m=512,h=0.1", "kde:m=128,h=0.1",
           "kde:m=2048,h=0.05", "kde:m=512,h=0.05", "kde:m=128,h=0.05",
           "kde:m=512,h=0.03", "kde:m=512,h=0.3")


def train(config: ScalingConfig, label: str) -> None:
    generators = fit_sources(config)
    for task in config.tasks(generators):
        start = time.perf_counter()
        row = task.run().rows[-1]
        print(f"{label:<28} {task.source:<20} width {task.width:>4}  D {task.examples:>7}  "
              f"batch {config.batch_size_for(task.examples):>4}  loss {row['loss']:.4f}  "
              f"robust {row['robust_acc']:.4f}  clean {row['clean_acc']:.4f}  "
              f"{time.perf_counter() - start:5.1f}s", flush=True)


def recipe() -> None:
    for optimizer, lr, widths, sizes, batch_from in RECIPES:
        config = ScalingConfig(widths=widths, data_sizes=sizes, optimizer=optimizer,
                               lr=(lr,), lr_bounds=(), batch_from=batch_from,
                               checkpoints=(1.0,))
        train(config, f"{optimizer} lr {lr:g} batch_from {batch_from}")


def quality() -> None:
    config = ScalingConfig(widths=(256,), data_sizes=(16384, 131072), sources=SOURCES,
                           lr=(0.5,), lr_bounds=(), checkpoints=(1.0,))
    generators = fit_sources(config)
    floor = conditional_w1(true_generator(config.data_task()), config.w1_n, 0)["value"]
    print(f"the truth's own W1 at {config.w1_n} points per side: {floor:.4f}")
    for spec, generator in generators.items():
        w1 = conditional_w1(generator, config.w1_n, 0)["value"]
        print(f"{spec:<20} FID analogue {fid(generator, config.fid_n, 0)['value']:.4f}  "
              f"W1 {w1:.4f} (excess {w1 - floor:+.4f})", flush=True)
    train(config, "sgd lr 0.5")


if __name__ == "__main__":
    which = sys.argv[1:] or ["recipe", "quality"]
    for name in which:
        {"recipe": recipe, "quality": quality}[name]()
