"""A generator's quality three ways (FID analogue, exact distances, conditional W1),
and its stream."""

import numpy as np
import pytest
from scipy import linalg, stats

from robnp.data.bayes import bayes_label
from robnp.data.generators import DataTask, fit_generator, true_generator
from robnp.data.quality import (GeneratorStream, conditional_w1, exact_distances, features,
                                fid, frechet_distance, quality_report, reference_network)
from robnp.errors import ConfigError
from robnp.model import MLP
from robnp.training.stream import fit_stream

TASK = DataTask("spirals", noise=0.1, size=256)
BLOBS = DataTask("blobs", noise=0.2)


def test_frechet_distance_is_the_formula():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    S1, S2 = A @ A.T, B @ B.T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    want = (np.sum((mu1 - mu2) ** 2) + np.trace(S1 + S2 - 2 * linalg.sqrtm(S1 @ S2).real))
    assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(want, rel=1e-9)
    assert frechet_distance(mu1, S1, mu1, S1) == pytest.approx(0, abs=1e-9 * np.trace(S1))


def test_a_sample_against_itself_is_zero():
    F = features(reference_network(TASK), true_generator(TASK).sample(2000, 0)[0])
    mu, S = F.mean(axis=0), np.cov(F, rowvar=False)
    assert abs(frechet_distance(mu, S, mu, S)) <= 1e-9 * np.trace(S)


def test_reference_network_is_deterministic_and_learned():
    net = reference_network(TASK)
    reference_network.cache_clear()
    again = reference_network(TASK)
    np.testing.assert_array_equal(net.params, again.params)
    X, y = true_generator(TASK).sample(3000, 5)
    bayes = (bayes_label("spirals", X, n_samples=256, noise=0.1, n_classes=3) == y).mean()
    assert (net.predict(X) == y).mean() > bayes - 0.02  # about 0.82 for both


def test_fid_grows_with_the_bandwidth_and_its_extrapolation():
    values = [fid(fit_generator(TASK, "kde", 64, 0, h=h), 2000, 1)["value"]
              for h in (0.05, 0.15, 0.4)]
    assert values[0] < values[1] < values[2]
    truth = fid(true_generator(TASK), 2000, 1)
    # the bias falls with n: the truth's FID_inf is closer to 0 than its smallest prefix
    assert abs(truth["fid_inf"]) < truth["curve"][0]
    assert truth["sizes"][0] == 400 and truth["sizes"][-1] == 2000


def gaussian_tv_same_cov(delta, s):
    return 2 * stats.norm.cdf(np.linalg.norm(delta) / (2 * s)) - 1


def gaussian_kl(delta, s_p, s_q, d=2):
    """KL(N(c, s_p^2 I) || N(c + delta, s_q^2 I))."""
    return 0.5 * (d * s_p ** 2 / s_q ** 2 - d + 2 * d * np.log(s_q / s_p)
                  + delta @ delta / s_q ** 2)


@pytest.mark.parametrize("method", ["quadrature", "sampling"])
def test_exact_distances_of_a_one_point_kde_on_blobs(method):
    """Blobs' classes are N(c_k, s^2 I); a KDE on one point per class is N(x_k, h^2 I):
    TV (h = s) and both KLs in closed form."""
    for h in (0.2, 0.1):
        kde = fit_generator(BLOBS, "kde", 1, 3, h=h)
        got = exact_distances(kde, method=method, importance_n=40000)
        centres = np.array([[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(3) / 3])
        deltas = [kde.points[k][0] - centres[k] for k in range(3)]
        w = BLOBS.priors()  # 342, 341, 341 of 1024
        kl = w @ [gaussian_kl(d, 0.2, h) for d in deltas]
        kl_reverse = w @ [gaussian_kl(-d, h, 0.2) for d in deltas]
        if method == "quadrature":
            assert got["kl"] == pytest.approx(kl, rel=1e-6)
            assert got["kl_reverse"] == pytest.approx(kl_reverse, rel=1e-6)
            np.testing.assert_allclose(got["mass_true"], 1, atol=1e-7)
            np.testing.assert_allclose(got["mass_generated"], 1, atol=1e-7)
        else:
            assert abs(got["kl"] - kl) < 5 * got["kl_se"]
            assert abs(got["kl_reverse"] - kl_reverse) < 5 * got["kl_reverse_se"]
        if h == 0.2:
            tv = w @ [gaussian_tv_same_cov(d, 0.2) for d in deltas]
            tolerance = 2e-3 if method == "quadrature" else 5 * got["tv_se"]
            assert abs(got["tv"] - tv) < tolerance


def test_the_truth_is_at_distance_zero_and_sampling_agrees_with_quadrature():
    zero = exact_distances(true_generator(TASK))
    assert zero["tv"] == 0 and zero["kl"] == 0 and zero["kl_reverse"] == 0
    kde = fit_generator(TASK, "kde", 40, 0, h=0.08)
    grid = exact_distances(kde)
    mc = exact_distances(kde, method="sampling", importance_n=20000)
    for name in ("tv", "kl", "kl_reverse"):
        assert abs(grid[name] - mc[name]) < 5 * mc[f"{name}_se"] + 2e-3
    assert 0 < grid["tv"] < 1


def test_a_task_without_a_density_is_one_line():
    task = DataTask("blobs", noise=0.0)
    kde = fit_generator(task, "kde", 5, 0, h=0.1)
    with pytest.raises(ConfigError, match=r"needs the task's exact class densities.*"
                                          r"noise 0 has no density"):
        exact_distances(kde)
    with pytest.raises(ConfigError, match=r"exact class densities"):
        quality_report(kde, 200, exact=True)
    assert quality_report(kde, 200, w1_n=60)["exact"] is None


def test_conditional_w1_orders_the_ladder():
    truth = conditional_w1(true_generator(TASK), 600, 0)["value"]
    near = conditional_w1(fit_generator(TASK, "kde", 64, 0, h=0.05), 600, 0)["value"]
    far = conditional_w1(fit_generator(TASK, "kde", 64, 0, h=0.5), 600, 0)["value"]
    assert truth < far and near < far


def test_conditional_w1_is_the_optimal_matching():
    """Against every matching of a small sample (brute force over permutations)."""
    from itertools import permutations
    kde = fit_generator(TASK, "kde", 3, 0, h=0.3)
    got = conditional_w1(kde, 18, 2)  # 6 points per class
    from robnp.data.generators import child_seed
    Xg, yg = kde.sample(18, 2)
    Xt, yt = true_generator(TASK).sample(18, child_seed(2, 9))
    for k in range(3):
        A, B = Xg[yg == k].astype(float), Xt[yt == k].astype(float)
        cost = np.linalg.norm(A[:, None] - B[None], axis=2)
        best = min(cost[np.arange(6), list(p)].mean() for p in permutations(range(6)))
        assert got["per_class"][k] == pytest.approx(best, rel=1e-12)


def test_generator_stream_is_the_same_however_read():
    kde = fit_generator(TASK, "kde", 30, 0, h=0.05)
    stream = GeneratorStream(kde, seed=4, block_size=100)
    X, y = stream.take(0, 450)
    assert not np.array_equal(X[:100], X[100:200])  # blocks differ
    pieces = [GeneratorStream(kde, seed=4, block_size=100).take(s, c)
              for s, c in ((0, 7), (7, 193), (200, 1), (201, 249))]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), X)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), y)
    assert not np.array_equal(GeneratorStream(kde, seed=5, block_size=100).take(0, 450)[0], X)
    other = GeneratorStream(fit_generator(TASK, "kde", 30, 0, h=0.06), seed=4, block_size=100)
    assert not np.array_equal(other.take(0, 450)[0], X)
    assert stream.identity()["generator"] == kde.identity()


def test_fit_stream_trains_on_a_generator():
    stream = GeneratorStream(fit_generator(TASK, "kde", 30, 0, h=0.05), seed=1)
    model = MLP(2, (16,), 3, seed=0)
    history = fit_stream(model, stream, 2048, batch_size=128, patience=None)
    again = MLP(2, (16,), 3, seed=0)
    fit_stream(again, GeneratorStream(fit_generator(TASK, "kde", 30, 0, h=0.05), seed=1),
               2048, batch_size=128, patience=None)
    np.testing.assert_array_equal(model.params, again.params)
    assert history.epochs == 1


def test_quality_report_holds_the_three_measures():
    report = quality_report(fit_generator(TASK, "kde", 20, 0, h=0.1), 500, 0, w1_n=90)
    assert report["kind"] == "kde" and report["knob"] == "h=0.1"
    assert report["fid"]["n"] == 500 and report["w1"]["n"] == 90
    assert report["exact"]["method"] == "quadrature"


def test_more_dimensions_use_importance_sampling():
    task = DataTask("blobs", noise=0.2, input_dim=4)
    kde = fit_generator(task, "kde", 1, 3, h=0.2)
    report = quality_report(kde, 300, 0, w1_n=60, importance_n=20000)
    exact = report["exact"]
    assert exact["method"] == "sampling"
    # one point per class, equal scales: KL(p||q) = |x_k - c_k|^2 / (2 s^2), per class
    centres = np.array([[np.cos(a), np.sin(a), 0, 0] for a in 2 * np.pi * np.arange(3) / 3])
    kl = task.priors() @ [np.sum((kde.points[k][0] - centres[k]) ** 2) / (2 * 0.04)
                          for k in range(3)]
    assert abs(exact["kl"] - kl) < 5 * exact["kl_se"]
    with pytest.raises(ConfigError, match=r"quadrature needs input_dim 2, got 4"):
        exact_distances(kde, method="quadrature")


MOONS = DataTask("moons", noise=0.1)


def test_a_blurred_rung_buys_less_robust_accuracy_than_the_truth():
    """Measured: true 0.921 clean / 0.901 robust, kde h=0.6 0.861 / 0.839 (2000 test
    points: a standard error of about 0.007)."""
    from robnp.data.quality import trained_accuracy
    truth = trained_accuracy(true_generator(MOONS), 20000, eps=0.05, test_n=2000)
    blurred = trained_accuracy(fit_generator(MOONS, "kde", 64, 0, h=0.6), 20000, eps=0.05,
                               test_n=2000)
    assert truth["robust_acc"] > blurred["robust_acc"] + 0.03
    assert truth["clean_acc"] > blurred["clean_acc"] + 0.03
    assert truth["robust_acc"] <= truth["clean_acc"]
    assert truth["model"]["hidden"] == [128, 128] and truth["model"]["attack"] == "pgd-cw"


@pytest.mark.parametrize("x,y", [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([0.3, 0.1, 0.1, 0.9, 0.5, 0.5, 0.2], [1, 3, 2, 2, 5, 4, 4]),
    ([3, 2, 1], [1, 2, 3]),
    (np.random.default_rng(0).normal(size=40), np.random.default_rng(1).normal(size=40)),
])
def test_spearman_is_scipys(x, y):
    from robnp.data.quality import spearman
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_without_an_order_is_nan():
    from robnp.data.quality import spearman
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1], [2]))
    with pytest.raises(ConfigError, match=r"1-D of one length"):
        spearman([1, 2], [1, 2, 3])


def fake_report(label, fid, tv, w1, robust, clean=0.9):
    return {"label": label, "fid": {"value": fid, "fid_inf": fid}, "w1": {"value": w1},
            "exact": None if tv is None else {"tv": tv, "kl": tv, "kl_reverse": tv},
            "accuracy": {"robust_acc": robust, "clean_acc": clean}}


def test_ladder_correlations_pick_the_measure_that_orders_the_accuracy():
    from robnp.data.quality import ladder_correlations
    reports = [fake_report("a", 0.1, 0.0, 0.3, 0.90), fake_report("b", 0.3, 0.2, 0.1, 0.85),
               fake_report("c", 0.2, 0.5, 0.2, 0.70), fake_report("d", 0.4, None, 0.4, 0.60)]
    got = ladder_correlations(reports)
    assert got["measures"]["tv"]["robust"] == pytest.approx(-1.0)
    assert got["measures"]["tv"]["rungs"] == 3
    assert got["measures"]["fid"]["robust"] == pytest.approx(-0.8)
    assert got["measures"]["w1"]["robust"] == pytest.approx(-0.4)
    assert np.isnan(got["measures"]["fid"]["clean"])
    assert got["best"] == "tv"
    del reports[2]["accuracy"]
    with pytest.raises(ConfigError, match=r"missing for c"):
        ladder_correlations(reports)


def test_quality_report_with_accuracy_and_bad_options():
    kde = fit_generator(MOONS, "kde", 20, 0, h=0.1)
    report = quality_report(kde, 200, w1_n=60, accuracy={"examples": 512, "test_n": 100})
    assert 0 <= report["accuracy"]["robust_acc"] <= report["accuracy"]["clean_acc"] <= 1
    assert report["accuracy"]["examples"] == 512
    with pytest.raises(ConfigError, match=r"examples must be an integer >= 1, got 0"):
        quality_report(kde, 200, w1_n=60, accuracy={"examples": 0})
    with pytest.raises(ConfigError, match=r"unknown options \['width'\]"):
        quality_report(kde, 200, w1_n=60, accuracy={"width": 3})
    with pytest.raises(ConfigError, match=r"eps must be a finite number > 0"):
        quality_report(kde, 200, w1_n=60, accuracy={"eps": 0})


def smoothed_kde(kde, b):
    """The KDE and the truth both blurred by N(0, b^2 I): exact densities again."""
    import dataclasses
    from robnp.data.generators import KDEGenerator, KDEOptions
    task = dataclasses.replace(kde.task, noise=float(np.hypot(kde.task.noise, b)))
    return KDEGenerator(task, KDEOptions(h=float(np.hypot(kde.options.h, b))), kde.m,
                        kde.seed, kde.points)


@pytest.mark.parametrize("task", [DataTask("moons", noise=0.1), DataTask("blobs", noise=0.2)])
def test_distances_from_samples_match_the_exact_blurred_ones(task):
    """Measured (n = 20000): truth 0.020 against a floor of 0.022 (moons), 0.0087 and
    0.0089 (blobs); a KDE 0.249 against the exact 0.247 (moons), 0.084 and 0.086."""
    from robnp.data.quality import sampled_distances
    truth = sampled_distances(true_generator(task), 20000)
    assert 0.6 * truth["tv_floor"] < truth["tv"] < 1.3 * truth["tv_floor"] < 0.05
    kde = fit_generator(task, "kde", 64, 0, h=task.noise / 2)
    got = sampled_distances(kde, 20000)
    assert got["bandwidth"] == task.noise / 2
    blurred = exact_distances(smoothed_kde(kde, got["bandwidth"]))
    assert abs(got["tv"] - blurred["tv"]) < got["tv_floor"]
    assert abs(got["kl_reverse"] - blurred["kl_reverse"]) < 0.1 * blurred["kl_reverse"]
    assert got["tv"] < exact_distances(kde)["tv"]  # a blur only lowers TV


def test_distances_from_samples_fall_to_the_floor_with_more_samples():
    from robnp.data.quality import sampled_distances
    values = [sampled_distances(true_generator(BLOBS), n)["tv"] for n in (1000, 4000, 16000)]
    assert values[0] > values[1] > values[2]
    assert values[0] / values[2] == pytest.approx(4, rel=0.25)  # 1 / sqrt(n)


def test_distances_from_samples_refuse_what_they_cannot_do():
    from robnp.data.quality import sampled_distances
    with pytest.raises(ConfigError, match=r"a distance from samples needs the task's exact"):
        sampled_distances(true_generator(DataTask("blobs", noise=0.0)), 1000)
    with pytest.raises(ConfigError, match=r"needs input_dim 2, got 3"):
        sampled_distances(true_generator(DataTask("blobs", noise=0.2, input_dim=3)), 1000)
    with pytest.raises(ConfigError, match=r"bandwidth must be a finite number > 0"):
        sampled_distances(true_generator(BLOBS), 1000, bandwidth=0)
    with pytest.raises(ConfigError, match=r"needs input_dim 2"):
        quality_report(true_generator(DataTask("blobs", noise=0.2, input_dim=3)), 200,
                       sampled=True)
    report = quality_report(true_generator(BLOBS), 300, w1_n=60, sampled_n=500)
    assert report["sampled"] is None  # the truth has an exact density
    report = quality_report(true_generator(BLOBS), 300, w1_n=60, sampled=True, sampled_n=500)
    assert report["sampled"]["n_per_class"] == 500


def test_generated_mass_far_from_the_truth_counts_whole():
    from robnp.data.quality import sampled_distances
    far = sampled_distances(fit_generator(BLOBS, "kde", 5, 0, h=30.0), 2000)
    assert far["outside"] > 0.5 and far["tv"] > 0.97 and far["kl_reverse"] is None
    near = sampled_distances(true_generator(BLOBS), 2000)
    assert near["outside"] < 1e-6 and near["kl_reverse"] is not None
