"""Threads chosen by the work: every core by default where a chunk is worth a thread,
one where it is not, the count a caller or the study sets, and results bit-identical
for 1, 2 and 3 threads on every single-process entry point."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
import robnp.attacks._threat as threat
import robnp.training.fit as fit_module
from robnp.attacks._threat import (ATTACK_CHUNK_ROWS, MIN_FLOPS_PER_CHUNK, available_cores,
                                   default_threads, row_flops, thread_count)
from robnp.data import make_dataset
from robnp.errors import ConfigError
from robnp.study import StudyConfig
from robnp.study.tasks import run_task
from robnp_cli.main import cli


def test_every_core_by_default_when_a_chunk_is_worth_a_thread(monkeypatch):
    monkeypatch.setattr(threat, "available_cores", lambda: 6)
    heavy = MIN_FLOPS_PER_CHUNK / ATTACK_CHUNK_ROWS
    assert thread_count(None, 10 * ATTACK_CHUNK_ROWS, heavy) == 6
    # no more than chunks: 3 x 256 rows are 4 chunks of 192
    assert thread_count(None, 3 * ATTACK_CHUNK_ROWS, heavy * 256 / 192) == 4
    assert thread_count(None, 3 * ATTACK_CHUNK_ROWS, heavy * 0.99 * 256 / 192) == 1
    assert thread_count(None, ATTACK_CHUNK_ROWS + 2, 2 * heavy) == 2
    assert thread_count(None, 10 * ATTACK_CHUNK_ROWS, heavy * 0.99) == 1
    # a small batch is one chunk whatever its work
    assert thread_count(None, ATTACK_CHUNK_ROWS, heavy * 1e6) == 1


def test_the_work_of_a_row_is_its_forward_passes():
    model = robnp.MLP(2, (512, 512), 2, seed=0)
    target = threat.AttackedModel(model)
    assert row_flops(target, 30) == 30 * robnp.flops.forward_flops(model.layer_sizes)
    # PGD-10 on a width-512 model: far above the threshold; on width 4: below it
    assert ATTACK_CHUNK_ROWS * row_flops(target, 30) > 50 * MIN_FLOPS_PER_CHUNK
    small = threat.AttackedModel(robnp.MLP(2, (4, 4), 2, seed=0))
    assert ATTACK_CHUNK_ROWS * row_flops(small, 30) < MIN_FLOPS_PER_CHUNK


def test_a_given_count_wins_over_the_default_and_the_default_over_the_work(monkeypatch):
    monkeypatch.setattr(threat, "available_cores", lambda: 8)
    heavy = MIN_FLOPS_PER_CHUNK
    with default_threads(1):
        assert thread_count(None, 10 * ATTACK_CHUNK_ROWS, heavy) == 1
        assert thread_count(3, 10 * ATTACK_CHUNK_ROWS, heavy) == 3
        with default_threads(None):
            assert thread_count(None, 10 * ATTACK_CHUNK_ROWS, heavy) == 8
    assert thread_count(None, 10 * ATTACK_CHUNK_ROWS, heavy) == 8
    with pytest.raises(ConfigError, match="n_threads"):
        with default_threads(0):
            pass


def test_available_cores_is_this_process_affinity():
    import os

    assert available_cores() == len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def wide():
    X, y = make_dataset("circles", 1000, 0.1, 3)
    return robnp.MLP(2, (48, 48), 2, seed=3), X, y


@pytest.mark.parametrize("name", ["pgd", "apgd-ce", "square", "fab"])
def test_attacks_are_bit_identical_on_one_two_and_three_threads(wide, name):
    model, X, y = wide
    runs = [robnp.evaluate(model, X, y, (0.05, 0.2), [(name, {"n_threads": n})], seed=4)
            for n in (1, 2, 3)]
    with default_threads(None):
        runs.append(robnp.evaluate(model, X, y, (0.05, 0.2), [name], seed=4))
    for other in runs[1:]:
        for a, b in zip(runs[0].attacks[name].adversarial, other.attacks[name].adversarial):
            np.testing.assert_array_equal(a, b)


def test_fit_is_bit_identical_on_one_two_and_three_threads(wide):
    model, X, y = wide
    trained = []
    for n in (1, 2, 3, None):
        copy = model.copy()
        history = robnp.fit(copy, X, y, recipe="trades", train_eps=0.1, max_epochs=2,
                            batch_size=512, n_threads=n)
        trained.append((copy.params, history.loss))
    for params, loss in trained[1:]:
        np.testing.assert_array_equal(params, trained[0][0])
        np.testing.assert_array_equal(loss, trained[0][1])


class _NoPool:
    def __init__(self, *args, **kwargs):
        raise AssertionError("the study must run each task on one thread")


def test_the_study_runs_each_task_on_one_thread(monkeypatch):
    # a task whose attacks and training would take every core by default
    monkeypatch.setattr(threat, "available_cores", lambda: 4)
    monkeypatch.setattr(threat, "ThreadPoolExecutor", _NoPool)
    monkeypatch.setattr(fit_module, "ThreadPoolExecutor", _NoPool)
    config = StudyConfig(datasets=("circles",), widths=(96,), seeds=(0,), n_samples=3000,
                         max_epochs=1, epsilons=(0.1,), recipe="trades", train_eps=0.1,
                         batch_size=512)
    task = config.tasks()[0]
    identity = json.dumps(task.identity())
    assert '"n_threads": null' in identity and '"n_threads": 1' not in identity  # as before
    run_task(task)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_commands_give_the_same_output_on_any_thread_count(tmp_path):
    outputs = {"train": set(), "attack": set(), "verify": set()}
    for n in ("1", "2", "3"):
        model = tmp_path / f"m{n}.npz"
        result = run("train", "--out", model, "--width", "48", "--n-samples", "1200",
                     "--max-epochs", "2", "--recipe", "trades", "--train-eps", "0.1",
                     "--batch-size", "512", "--threads", n)
        assert result.exit_code == 0, result.output
        outputs["train"].add(result.output.replace(str(model), "M").replace(
            str(model.with_suffix(".json")), "J"))
        result = run("attack", model, "--threads", n, "--attacks", "pgd,apgd-ce",
                     "--no-convergence-check")
        assert result.exit_code == 0, result.output
        outputs["attack"].add(result.output.replace(str(model), "M"))
        result = run("verify", model, "--threads", n, "--eps", "0.05", "--budget", "64")
        assert result.exit_code == 0, result.output
        outputs["verify"].add("\n".join(result.output.replace(str(model), "M")
                                        .splitlines()[:-1]))  # the last line is the time
    assert all(len(found) == 1 for found in outputs.values()), outputs


@pytest.mark.parametrize("command", ["train", "attack", "verify"])
def test_threads_below_one_are_refused_in_one_line(tmp_path, command):
    args = [command] + (["--out", tmp_path / "m.npz"] if command == "train" else
                        [tmp_path / "m.npz"])
    result = run(*args, "--threads", "0")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --threads must be an integer >= 1, got 0"]


@pytest.mark.parametrize("chunk", [1, 7, 106, 256])
def test_chunks_cover_the_rows_evenly_in_an_even_count(chunk):
    for n in list(range(0, 3 * chunk + 3)) + [10 * chunk + 1, 2000]:
        bounds = threat.chunk_bounds(n, chunk)
        if n == 0:
            assert bounds == []
            continue
        assert [start for start, _ in bounds] == [0] + [stop for _, stop in bounds[:-1]]
        assert bounds[-1][1] == n
        sizes = [stop - start for start, stop in bounds]
        assert all(0 < size <= chunk for size in sizes)
        assert max(sizes) - min(sizes) <= 1
        fewest = -(-n // chunk)
        assert len(bounds) == (min(fewest + fewest % 2, n) if fewest > 1 else fewest)


def test_two_threads_get_equal_halves_of_the_study_test_set():
    assert threat.chunk_bounds(400) == [(0, 200), (200, 400)]


def test_the_clean_logits_and_gradient_in_chunks_are_thread_invariant_and_right():
    model = robnp.MLP(2, (64, 64), 3, seed=5)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, 2)).astype(model.dtype)
    y = rng.integers(0, 3, 700)
    code = robnp.kernels.LOSS_CROSS_ENTROPY
    logits = [threat.chunked_logits(model, X, n) for n in (1, 2, 3)]
    grads = [threat.chunked_input_gradient(model, X, y, code, n) for n in (1, 2, 3)]
    for other in logits[1:]:
        np.testing.assert_array_equal(other, logits[0])
    for other in grads[1:]:
        np.testing.assert_array_equal(other, grads[0])
    # the same numbers as the whole batch at once, up to the summation order of BLAS
    np.testing.assert_allclose(logits[0], model.logits(X), rtol=1e-5, atol=1e-6)
    whole = robnp.input_gradient(model, X, y)
    np.testing.assert_allclose(grads[0], whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())
    # the mean's scale is the whole batch's, not a chunk's
    assert np.abs(grads[0]).max() < 2 * np.abs(whole).max()


def test_chunks_asked_for_inside_a_chunk_run_in_order_without_waiting():
    """A chunk's work that hands out chunks of its own would wait for the threads it
    occupies; it runs them itself."""
    import threading

    seen = np.zeros(40, int)

    def inner(start, stop):
        seen[start:stop] += 1

    def outer(start, stop):
        threat.over_chunks(lambda a, b: inner(start + a, start + b), stop - start, 2,
                           chunk_rows=3)

    done = threading.Event()
    worker = threading.Thread(target=lambda: (threat.over_chunks(outer, 40, 2, chunk_rows=10),
                                              done.set()), daemon=True)
    worker.start()
    worker.join(60)
    assert done.is_set(), "chunks inside a chunk deadlocked"
    np.testing.assert_array_equal(seen, 1)


def test_a_forked_child_starts_its_own_chunk_threads():
    import os

    threat.over_chunks(lambda a, b: None, 10, 2, chunk_rows=2)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        out = np.zeros(10)

        def work(a, b):
            out[a:b] = 1

        try:
            threat.over_chunks(work, 10, 2, chunk_rows=2)
            os._exit(0 if out.all() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_failing_chunk_stops_the_rest_and_is_raised_once_none_runs():
    import threading
    import time

    finished, running = [], []
    lock = threading.Lock()

    def work(start, stop):
        with lock:
            running.append(start)
        try:
            if start == 0:  # the first chunk taken
                raise ValueError("chunk 0")
            time.sleep(0.2)
            finished.append(start)
        finally:
            with lock:
                running.remove(start)

    with pytest.raises(ValueError, match="chunk 0"):
        threat.over_chunks(work, 16, 2, chunk_rows=2)
    assert running == []                 # nothing left running when it is raised
    assert len(finished) <= 1            # at most the chunk beside it; no new one began


def test_a_larger_thread_count_grows_the_one_pool():
    """One pool, grown to the most threads asked for; a call never runs its chunks on
    more threads than it asked for."""
    import threading
    import time

    before = threat._chunk_pools[0][0] if threat._chunk_pools else 0
    for n in (2, 3, 2, 4, 3):
        seen = set()

        def work(start, stop):
            seen.add(threading.get_ident())
            time.sleep(0.01)

        threat.over_chunks(work, 40, n, chunk_rows=5)
        assert 1 <= len(seen) <= n
    assert len(threat._chunk_pools) == 1 and threat._chunk_pools[0][0] == max(before, 4)
