"""Sizes that cannot fit are refused before memory is spent, with one line that names
the size, the estimate and the machine's memory, the same for any --jobs; the
estimates are upper bounds of what robnp really allocates."""

import tracemalloc

import pytest
from click.testing import CliRunner

import robnp.limits
from robnp.errors import ConfigError
from robnp.gradcheck import check_gradients
from robnp.limits import (
    MAX_SIZE, available_memory, check_fits, format_bytes, gradcheck_memory, training_memory,
)
from robnp.study import StudyConfig
from robnp.study.tasks import Task, run_task
from robnp_cli.main import cli

TINY = ["--datasets", "moons", "--widths", "4", "--seeds", "0", "--epsilons", "0.1",
        "--n-samples", "100", "--max-epochs", "5", "--quiet"]
EIGHT_GIB = 8 * 1024 ** 3


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
    return lines[0]


@pytest.fixture
def eight_gib(monkeypatch):
    """A machine with 8 GiB available, so that messages do not drift with the load."""
    monkeypatch.setattr(robnp.limits, "available_memory", lambda: float(EIGHT_GIB))


@pytest.mark.parametrize("option,value,names", [
    ("--widths", "1000000000", "width=1000000000"),
    ("--n-samples", "1000000000000", "n_samples=1000000000000"),
    ("--max-epochs", "100000000000000", "max_epochs=100000000000000"),
], ids=["width 1e9", "1e12 samples", "1e14 epochs"])
def test_a_task_that_cannot_fit_is_refused_alike_for_any_jobs(tmp_path, eight_gib, option,
                                                             value, names):
    lines = set()
    for jobs in ("1", "2", "64"):
        out = tmp_path / f"out{jobs}"
        position = TINY.index(option)
        args = TINY[:position] + TINY[position + 2:]  # the tiny value replaced below
        line = one_error_line(run("sweep", *args, option, value, "--jobs", jobs, "--out", out))
        assert not out.exists()  # refused before the directory was made
        lines.add(line.replace(str(out), "OUT"))
    assert len(lines) == 1, lines
    line = lines.pop()
    assert names in line and "8.0 GiB available" in line and "needs about" in line


def test_an_epoch_count_past_any_integer_type_is_one_line(tmp_path):
    position = TINY.index("--max-epochs")
    args = TINY[:position] + TINY[position + 2:]
    line = one_error_line(run("sweep", *args, "--max-epochs", str(10 ** 30),
                              "--out", tmp_path / "o"))
    assert "max_epochs" in line and str(10 ** 30) in line


def test_gradcheck_on_huge_layers_is_one_line(eight_gib):
    line = one_error_line(run("gradcheck", "--hidden", "100000,100000"))
    assert "hidden=100000,100000" in line and "8.0 GiB available" in line


def test_gradcheck_library_call_refuses_before_allocating(eight_gib):
    tracemalloc.start()
    with pytest.raises(ConfigError, match="needs about"):
        check_gradients((100000, 100000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1024 ** 2


def test_an_empty_out_is_refused(tmp_path):
    line = one_error_line(run("sweep", *TINY, "--out", ""))
    assert "--out" in line


def test_the_machine_memory_is_known_and_plausible():
    available = available_memory()
    assert available is not None and available > 0
    with open("/proc/meminfo") as handle:
        total = next(int(line.split()[1]) * 1024 for line in handle
                     if line.startswith("MemTotal:"))
    assert available <= total


def test_check_fits_passes_what_fits_and_names_the_largest_part():
    estimate = training_memory(n_features=2, hidden=(10 ** 6, 10 ** 6), n_classes=2,
                               n_samples=100, test_fraction=0.2, batch_size=10, max_epochs=5)
    check_fits(estimate, "a task", available=estimate.total)  # exactly enough: fine
    with pytest.raises(ConfigError, match="mostly parameters and Adam moments "
                                          r"\(width=1000000, depth=2"):
        check_fits(estimate, "a task", available=estimate.total - 1)


def test_sizes_beyond_two_to_the_53_are_refused_by_name():
    with pytest.raises(ConfigError, match="max_epochs must be at most 2\\*\\*53"):
        training_memory(n_features=2, hidden=(4,), n_classes=2, n_samples=10,
                        test_fraction=0.2, batch_size=4, max_epochs=MAX_SIZE + 1)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(8 * 1024 ** 3) == "8.0 GiB"
    assert format_bytes(2.0 ** 80) == "1.2e+24 B"


def _task(dataset, width, n_samples, max_epochs, batch_size, input_dim):
    config = StudyConfig(datasets=(dataset,), noise=0.15, n_samples=n_samples,
                         test_fraction=0.2, input_dim=input_dim, seeds=(0,), widths=(width,),
                         depth=2, batch_size=batch_size, max_epochs=max_epochs,
                         epsilons=(0.1, 0.2), pgd_steps=3)
    return config.tasks()[0]


def _peak_bytes(function, *args):
    function(*args)  # compile first: Numba's own allocations are not the task's
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dataset,width,n_samples,max_epochs,batch_size,input_dim", [
    ("moons", 4, 100, 5, 256, 2),
    ("moons", 256, 1000, 5, 64, 2),
    ("circles", 8, 5000, 20, 1000, 10),
    ("circles", 512, 300, 3, 256, 2),
    ("moons", 16, 40000, 2, 256, 2),
])
def test_the_task_estimate_bounds_what_a_task_allocates(dataset, width, n_samples, max_epochs,
                                                        batch_size, input_dim):
    task = _task(dataset, width, n_samples, max_epochs, batch_size, input_dim)
    peak = _peak_bytes(run_task, task)
    estimate = training_memory(n_features=input_dim, hidden=task.hidden, n_classes=2,
                               n_samples=n_samples, test_fraction=0.2,
                               batch_size=batch_size, max_epochs=max_epochs).total
    assert peak <= estimate <= 5 * peak + 65536


@pytest.mark.parametrize("hidden,n_features,n_classes,n_samples", [
    ((17, 17), 2, 3, 33), ((30, 30, 30), 3, 4, 50), ((4,), 2, 2, 400), ((4, 4), 20, 2, 60),
])
def test_the_gradcheck_estimate_bounds_what_it_allocates(hidden, n_features, n_classes,
                                                         n_samples):
    peak = _peak_bytes(check_gradients, hidden, n_features, n_classes, n_samples)
    estimate = gradcheck_memory(n_features=n_features, hidden=hidden, n_classes=n_classes,
                                n_samples=n_samples).total
    assert peak <= estimate <= 5 * peak + 65536


@pytest.mark.parametrize("width,n_samples,batch_size,settings", [
    (8, 400, 256, dict(optimizer="sgd", momentum=0.9, ema=True)),
    (64, 1000, 200, dict(optimizer="adamw", schedule="cosine", patience=None, ema=True,
                         recipe_options={"smoothing": 0.1})),
    (256, 300, 64, dict(optimizer="sgd", lr=0.01)),
    (128, 600, 256, dict(recipe="trades", recipe_options={"eps": 0.1})),
    (64, 600, 128, dict(recipe="pgd-at", recipe_options={"eps": 0.1}, select="robust",
                        val_fraction=0.2)),
    (32, 400, 64, dict(recipe="fgsm-rs", recipe_options={"eps": 0.1})),
])
def test_the_estimate_bounds_the_general_training_loop(width, n_samples, batch_size,
                                                       settings):
    import dataclasses

    task = _task("moons", width, n_samples, 3, batch_size, 2)
    task = dataclasses.replace(task, train=task.train.replace(**settings))
    assert not task.train.fused
    peak = _peak_bytes(run_task, task)
    estimate = training_memory(n_features=2, hidden=task.hidden, n_classes=2,
                               n_samples=n_samples, test_fraction=0.2, batch_size=batch_size,
                               max_epochs=3, train=task.train)
    plain = training_memory(n_features=2, hidden=task.hidden, n_classes=2,
                            n_samples=n_samples, test_fraction=0.2, batch_size=batch_size,
                            max_epochs=3)
    assert estimate.total > plain.total
    assert peak <= estimate.total <= 5 * peak + 65536


# ---------------------------------------------------------------------------
# every entry point: the constructors, make_dataset, fit, evaluate, verify, the CLI
# ---------------------------------------------------------------------------

import numpy as np  # noqa: E402

import robnp  # noqa: E402
import robnp._memory  # noqa: E402
from robnp.attacks._threat import evaluation_memory  # noqa: E402
from robnp.data import dataset_names, generation_memory, make_dataset  # noqa: E402
from robnp.model import init_memory  # noqa: E402
from robnp.training.config import TrainConfig  # noqa: E402
from robnp.training.fit import fit_memory  # noqa: E402
from robnp.verify import verify_radii  # noqa: E402
from robnp.verify.bab import verification_memory  # noqa: E402

TERA_ROWS = 10 ** 12


@pytest.fixture
def eight_gib_anywhere(monkeypatch):
    """8 GiB available to every check, so that messages do not drift with the load."""
    monkeypatch.setattr(robnp._memory, "available_memory", lambda: float(EIGHT_GIB))


def huge(n_features=2):
    """Rows that would need terabytes, as read-only views of one row (nothing allocated)."""
    return (np.broadcast_to(np.zeros(n_features, np.float32), (TERA_ROWS, n_features)),
            np.broadcast_to(np.zeros(1, np.int64), (TERA_ROWS,)))


def refused(call, *names):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message, message
    assert "8.0 GiB available" in message and "needs about" in message, message
    return message


def test_the_constructor_refuses_a_network_that_cannot_fit(eight_gib_anywhere):
    message = refused(lambda: robnp.MLP(2, (10 ** 6, 10 ** 6), 2),
                      "(2, 1000000, 1000000, 2)", "1000006000002 parameters")
    assert "TiB" in message


def test_make_dataset_refuses_rows_that_cannot_fit(eight_gib_anywhere):
    refused(lambda: make_dataset("circles", TERA_ROWS, 0.1, 0), "n_samples=1000000000000")
    refused(lambda: make_dataset("spheres", 10 ** 6, 0.1, 0, input_dim=10 ** 6),
            "input_dim=1000000")


def test_fit_evaluate_and_verify_refuse_before_copying_the_rows(eight_gib_anywhere):
    model = robnp.MLP(2, (8, 8), 2, seed=0)
    X, y = huge()
    refused(lambda: robnp.fit(model, X, y), "1000000000000 rows")
    refused(lambda: robnp.evaluate(model, X, y, (0.1, 0.2)), "n_points=1000000000000")
    refused(lambda: robnp.robust_accuracy(model, X, y, "pgd", 0.1), "n_points=1000000000000")
    refused(lambda: verify_radii(model, X, y, [0.1]), "n_points=1000000000000")


def test_fit_refuses_epochs_whose_records_cannot_fit(eight_gib_anywhere):
    model = robnp.MLP(2, (4,), 2, seed=0)
    X, y = make_dataset("moons", 40, 0.1, 0)
    for recipe in ({}, {"recipe": "fgsm-rs", "train_eps": 0.1}):
        refused(lambda: robnp.fit(model, X, y, max_epochs=10 ** 14, patience=None, **recipe),
                "max_epochs=100000000000000")


def test_each_command_refuses_sizes_that_cannot_fit_in_one_line(tmp_path, eight_gib_anywhere):
    model = tmp_path / "m.npz"
    assert run("train", "--out", model, "--max-epochs", "1", "--n-samples", "200").exit_code == 0
    line = one_error_line(run("train", "--width", "10000000", "--out", tmp_path / "w.npz"))
    assert "10000000" in line and "PiB" in line
    assert not (tmp_path / "w.npz").exists()
    big = ["--n-samples", "2000000000"]
    for args in (["attack", model, *big], ["verify", model, "--dataset", "circles", *big],
                 ["plot", "boundary", model, "--dataset", "circles", "--seed", "42", "--eps",
                  "0.1", "--out", tmp_path / "b.png", *big]):
        line = one_error_line(run(*args))
        assert "n_samples=2000000000" in line and "8.0 GiB available" in line, line


# Each estimate is an upper bound of what tracemalloc sees allocated, within a stated
# factor (the allocations are deterministic; these hold on any machine).

def peak(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("sizes", [(2, 512, 512, 2), (10, 300, 200, 100, 7), (2, 4000, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_initialisation_estimate_bounds_its_allocations_within_ten_percent(sizes, dtype):
    used = peak(lambda: robnp.MLP(sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, seed=0))
    estimate = init_memory(sizes, dtype).total
    assert used <= estimate <= 1.1 * used


@pytest.mark.parametrize("name", dataset_names())
@pytest.mark.parametrize("input_dim", [3, 12])
def test_the_generation_estimate_bounds_every_dataset_within_three_times(name, input_dim):
    make_dataset(name, 50, 0.1, 0, input_dim)
    used = peak(lambda: make_dataset(name, 50_000, 0.1, 0, input_dim))
    estimate = generation_memory(50_000, input_dim).total
    assert used <= estimate <= 3 * used


@pytest.mark.parametrize("width,n,d,classes,attacks,eps,convergence", [
    (64, 3000, 2, 2, ("fgsm", "pgd"), (0.05, 0.1, 0.2), False),
    (16, 3000, 40, 2, ("pgd",), (0.1,), False),
    (128, 1000, 2, 2, ("fgsm", "pgd", "apgd-ce"), (0.1, 0.2), True),
    (32, 2000, 20, 2, ("apgd-ce", "square"), (0.1, 0.2), False),
    (64, 2000, 10, 5, ("fab-t", "apgd-t", "apgd-dlr"), (0.1,), False),
])
def test_the_evaluation_estimate_bounds_its_allocations_within_two_times(
        width, n, d, classes, attacks, eps, convergence):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    model = robnp.MLP(d, (width, width), classes, seed=0)
    robnp.evaluate(model, X[:40], y[:40], eps, attacks, check_convergence=convergence)
    used = peak(lambda: robnp.evaluate(model, X, y, eps, attacks,
                                       check_convergence=convergence))
    estimate = evaluation_memory(n_points=n, n_features=d, n_radii=len(eps),
                                 n_attacks=len(attacks) * (2 if convergence else 1),
                                 layer_sizes=model.layer_sizes).total
    assert used <= estimate <= 2 * used


@pytest.mark.parametrize("width,n,d,settings", [
    (64, 2000, 2, dict(max_epochs=5)),
    (256, 20000, 2, dict(max_epochs=2)),
    (16, 1000, 2, dict(max_epochs=20000, patience=None)),
    (64, 4000, 10, dict(max_epochs=2, recipe="trades", train_eps=0.1)),
    (128, 3000, 2, dict(max_epochs=2, recipe="pgd-at", train_eps=0.1, select="robust",
                        val_fraction=0.2, ema=True)),
    (32, 3000, 20, dict(max_epochs=2, recipe="fgsm-rs", train_eps=0.1, optimizer="sgd",
                        momentum=0.9)),
    (4, 20, 2, dict(max_epochs=20000, patience=None, recipe="fgsm-rs", train_eps=0.1)),
])
def test_the_training_estimate_bounds_fit_within_two_and_a_half_times(width, n, d, settings):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    config = TrainConfig(**settings)
    model = robnp.MLP(d, (width, width), 2, seed=0)
    robnp.fit(model, X[:100], y[:100], config.replace(max_epochs=1))
    used = peak(lambda: robnp.fit(model, X, y, config))
    estimate = fit_memory(model.layer_sizes, n, config).total
    assert used <= estimate <= 2.5 * used


@pytest.mark.parametrize("width,depth,n,d,eps", [
    (32, 3, 1000, 2, (0.01, 0.1)),
    (64, 2, 300, 10, (0.05,)),
    (64, 2, 400, 2, (0.05, 0.2)),
])
def test_the_verification_estimate_bounds_verify_within_eight_times(width, depth, n, d, eps):
    X, y = make_dataset("circles" if d == 2 else "spheres", n, 0.1, 0, d)
    model = robnp.MLP(d, (width,) * depth, 2, seed=0)
    robnp.fit(model, X, y, max_epochs=3)
    verify_radii(model, X[:10], y[:10], eps, budget=16)
    used = peak(lambda: verify_radii(model, X, y, eps, budget=64, n_threads=1))
    estimate = verification_memory(model.layer_sizes, n, len(eps)).total
    # A full round of branch and bound (4096 boxes) is what the estimate must hold even
    # where attacks decide most points and the rounds of this run are short.
    full = full_round_peak(model)
    assert used <= estimate and full <= estimate <= 8 * max(used, full)


def full_round_peak(model, n_threads=1):
    from robnp.verify.bab import _BATCH_BOXES
    from robnp.verify.bounds import Box, Float64Net, region_margin_bounds

    net = Float64Net.of(model)
    rng = np.random.default_rng(0)
    lo = rng.normal(size=(2 * _BATCH_BOXES, model.n_features))
    y = rng.integers(0, model.n_classes, lo.shape[0])
    return peak(lambda: region_margin_bounds(net, Box(lo, lo + 0.05), y, "both", n_threads))


@pytest.mark.parametrize("sizes", [(2, 16, 16, 2), (2, 64, 64, 2), (10, 64, 64, 2),
                                   (2, 32, 32, 32, 2), (2, 512, 512, 2)])
def test_a_full_round_of_bounds_on_two_threads_is_within_the_estimate(sizes):
    """Each thread holds a chunk of its own: the estimate counts one per thread."""
    model = robnp.MLP(sizes[0], sizes[1:-1], sizes[-1], seed=0)
    full = full_round_peak(model, n_threads=2)
    estimate = verification_memory(sizes, 100, 1, n_threads=2).parts[1][2]
    assert full <= estimate
