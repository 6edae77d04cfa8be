"""Specification of ``autoattack``, AutoAttack's standard suite as one registered name:
its stages and their parameters (those of the reference's ``set_version('standard')``),
the cascade, what it does on 2 to 5 classes, seeds, and how it reaches the CLI and the
study."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp.attacks import (APGDCEOptions, APGDDLROptions, APGDTOptions, AutoAttackOptions,
                           FABTOptions, SquareOptions, get_attack)
from robnp.errors import ConfigError
from robnp.study.config import StudyConfig
from conftest import make_blobs

STAGES = ("aa-apgd-ce", "aa-apgd-t", "aa-fab-t", "aa-square")
RADII = (0.0, 0.15, 0.4)


def blobs(n_classes, n=150, seed=7):
    """A float64 MLP on ``n_classes`` blobs in 4 dimensions, and its 50 test points."""
    X, y = make_blobs(n, n_classes, 4, seed=seed)
    model = robnp.MLP(4, (12, 12), n_classes, dtype=np.float64, seed=seed)
    robnp.fit(model, X[:100], y[:100], max_epochs=60, seed=seed)
    return model, X[100:].astype(np.float64), y[100:]


def test_the_stages_are_the_reference_standard_version_in_its_order():
    options = AutoAttackOptions(bounds=(-3.0, 3.0), n_threads=1)
    stages = options.stages(10)
    assert [s.name for s in stages] == list(STAGES)
    assert [s.attack for s in stages] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    ce, t, fab, square = (s.options for s in stages)
    assert type(ce) is APGDCEOptions and type(t) is APGDTOptions
    assert type(fab) is FABTOptions and type(square) is SquareOptions
    for apgd in (ce, t):
        assert (apgd.n_iter, apgd.n_restarts, apgd.rho, apgd.norm) == (100, 1, 0.75, "linf")
    assert ce.loss == "cross_entropy" and (t.loss, t.n_target_classes) == ("dlr", 9)
    assert (fab.n_iter, fab.n_restarts, fab.n_target_classes, fab.norm) == (100, 1, 9, "linf")
    assert (fab.alpha_max, fab.eta, fab.beta) == (0.1, 1.05, 0.9)
    assert (square.n_queries, square.p_init, square.n_restarts) == (5000, 0.8, 1)
    for stage in stages:
        assert stage.options.bounds == (-3.0, 3.0) and stage.options.n_threads == 1
    assert options.notices(10) == () and options.notices(100) == ()
    # the L2 suite: the same APGD and FAB stages in L2, and no Square (L-infinity only)
    l2 = AutoAttackOptions(norm="l2")
    assert [s.name for s in l2.stages(10)] == list(STAGES[:3])
    assert all(s.options.norm == "l2" for s in l2.stages(10))
    assert any("aa-square is skipped" in n for n in l2.notices(10))
    # its cost is its stages' (the cascade can cost no more)
    assert options.passes(10) == sum(s.options.passes(10) for s in stages)


@pytest.mark.parametrize("n_classes, second, notices", [
    (2, APGDCEOptions, ["2 classes: aa-apgd-t runs apgd-ce again", "it is untargeted FAB"]),
    (3, APGDDLROptions, ["3 classes: aa-apgd-t runs apgd-dlr", "targeted DLR loss needs 4",
                         "fab-t targets all 2 wrong classes"]),
    (4, APGDTOptions, ["4 classes: apgd-t and fab-t target all 3 wrong classes"]),
    (5, APGDTOptions, ["5 classes: apgd-t and fab-t target all 4 wrong classes"]),
])
def test_on_fewer_classes_it_runs_what_is_defined_and_says_so(n_classes, second, notices):
    model, X, y = blobs(n_classes)
    evaluation = robnp.evaluate(model, X, y, (0.3,), ["autoattack"], seed=1)
    assert list(evaluation.attacks) == [*STAGES, "autoattack"]
    assert type(evaluation.attacks["aa-apgd-t"].options) is second
    text = " | ".join(evaluation.notices)
    for part in notices:
        assert part in text, text
    assert len(set(evaluation.notices)) == len(evaluation.notices)
    assert evaluation.to_dict()["notices"] == list(evaluation.notices)
    # the stages ran: the targeted stage attacked the points APGD-CE left
    stage = evaluation.attacks["aa-apgd-t"]
    assert stage.attacked[0].sum() == (~evaluation.attacks["aa-apgd-ce"].success[0]
                                       & evaluation.clean_correct).sum()
    targets = [s.options for s in AutoAttackOptions().stages(n_classes)
               if s.name == "aa-fab-t"][0].n_target_classes
    assert targets == 9  # the options ask the reference's 9; FAB-T uses the K - 1 there are


def test_ten_classes_need_no_notice():
    model, X, y = blobs(10, n=200)
    evaluation = robnp.evaluate(model, X, y, (0.2,), ["autoattack"])
    assert evaluation.notices == () and "notices" not in evaluation.to_dict()
    assert type(evaluation.attacks["aa-apgd-t"].options) is APGDTOptions


def test_each_stage_attacks_only_the_points_still_robust(blobs_model, monkeypatch):
    model, X, y = blobs_model
    from robnp.attacks import _autoattack

    handed = []  # (stage's attack, rows handed) per call
    real = _autoattack.get_attack

    def spying(name):
        spec = real(name)

        def run(model, X, y, radii, options, rng):
            handed.append((name, X.shape[0]))
            return spec.run(model, X, y, radii, options, rng)

        return spec.__class__(spec.name, run, spec.options, spec.summary)

    monkeypatch.setattr(_autoattack, "get_attack", spying)
    evaluation = robnp.evaluate(model, X, y, RADII, ["autoattack"], seed=2)
    results = [evaluation.attacks[name] for name in STAGES]
    suite = evaluation.attacks["autoattack"]
    broken = np.repeat(~evaluation.clean_correct[None], len(RADII), axis=0)
    expected_calls = []
    for stage_name, result in zip(STAGES, results):
        np.testing.assert_array_equal(result.attacked, ~broken)
        assert not np.any(result.success & ~result.attacked)
        broken = broken | result.success
        np.testing.assert_array_equal(result.robust_acc, (~broken).sum(axis=1) / len(y))
        attack = {"aa-apgd-ce": "apgd-ce", "aa-apgd-t": "apgd-t", "aa-fab-t": "fab-t",
                  "aa-square": "square"}[stage_name]
        expected_calls += [(attack, int(n)) for n in result.attacked.sum(axis=1) if n]
        # each stage's points: in the ball, and misclassified where it succeeded
        for k, eps in enumerate(RADII):
            assert np.abs(result.adversarial[k] - X).max() <= eps + 1e-9
            if result.success[k].any():
                assert np.all(model.predict(result.adversarial[k][result.success[k]])
                              != y[result.success[k]])
    assert handed == expected_calls
    # robust accuracy never rises along the stages; the suite's is the last stage's
    accs = np.array([r.robust_acc for r in results])
    assert np.all(np.diff(accs, axis=0) <= 0)
    np.testing.assert_array_equal(suite.robust_acc, results[-1].robust_acc)
    np.testing.assert_array_equal(evaluation.worst_robust_acc, results[-1].robust_acc)
    np.testing.assert_array_equal(evaluation.worst_success, broken)
    assert accs[-1, 1] < accs[0, 1] or accs[0, 1] == 0  # the later stages did something
    # the suite's points: the first successful stage's, the clean point elsewhere
    assert np.all(model.predict(suite.adversarial[1][broken[1]]) != y[broken[1]])
    robust = ~broken[2]
    np.testing.assert_array_equal(suite.adversarial[2][robust], X[robust])
    # eps = 0 breaks nothing
    assert evaluation.worst_robust_acc[0] == evaluation.clean_acc


def test_robust_accuracy_by_name_is_the_suites_worst_case(blobs_model):
    model, X, y = blobs_model
    evaluation = robnp.evaluate(model, X, y, RADII, ["autoattack"],
                                seed=np.random.default_rng(5))
    by_name = robnp.robust_accuracy(model, X, y, "autoattack", RADII,
                                    seed=np.random.default_rng(5))
    assert by_name == evaluation.robust_accuracy("autoattack")


def test_a_seed_fixes_every_stage_and_another_seed_changes_them(blobs_model):
    model, X, y = blobs_model
    first = robnp.evaluate(model, X, y, (0.4,), ["autoattack"], seed=3)
    again = robnp.evaluate(model, X, y, (0.4,), ["autoattack"], seed=3)
    other = robnp.evaluate(model, X, y, (0.4,), ["autoattack"], seed=4)
    for name in (*STAGES, "autoattack"):
        np.testing.assert_array_equal(first.attacks[name].adversarial,
                                      again.attacks[name].adversarial)
    assert not np.array_equal(first.attacks["aa-apgd-ce"].adversarial,
                              other.attacks["aa-apgd-ce"].adversarial)
    # without a seed: 0, never the clock
    assert robnp.robust_accuracy(model, X, y, "autoattack", (0.4,)) == \
        robnp.robust_accuracy(model, X, y, "autoattack", (0.4,), seed=0)


def test_cascading_with_other_attacks_hands_the_suite_only_what_they_left(blobs_model):
    model, X, y = blobs_model
    evaluation = robnp.evaluate(model, X, y, (0.4,), ["pgd", "autoattack"], cascade=True)
    pgd = evaluation.attacks["pgd"]
    left = evaluation.clean_correct & ~pgd.success[0]
    np.testing.assert_array_equal(evaluation.attacks["aa-apgd-ce"].attacked[0], left)
    np.testing.assert_array_equal(evaluation.attacks["autoattack"].attacked[0], left)
    assert evaluation.attacks["autoattack"].robust_acc[0] == evaluation.worst_robust_acc[0]


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^norm must be one of linf, l2, got 'l1'$"):
        AutoAttackOptions(norm="l1")
    with pytest.raises(ConfigError, match="n_iter"):
        get_attack("autoattack").make_options({"n_iter": 5})
    with pytest.raises(ConfigError, match="n_threads"):
        AutoAttackOptions(n_threads=0)


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("aa") / "blobs3.npz"
    result = CliRunner().invoke(robnp_cli(), [
        "train", "--dataset", "blobs", "--n-classes", "3", "--n-samples", "300",
        "--width", "8", "--max-epochs", "40", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def robnp_cli():
    from robnp_cli.main import cli

    return cli


def test_robnp_attack_prints_the_stages_and_each_notice_once(three_class_model, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(robnp_cli(), [
        "attack", str(three_class_model), "--attacks", "autoattack", "--eps", "0.1,0.3",
        "--no-convergence-check", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [line.split()[0] for line in lines if line.startswith("  AA-") or
            line.startswith("  AUTOATTACK")]
    assert rows == ["AA-APGD-CE", "AA-APGD-T", "AA-FAB-T", "AA-SQUARE", "AUTOATTACK"]
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 2 and "aa-apgd-t runs apgd-dlr" in notes[0]
    document = json.loads(out.read_text())
    assert document["notices"] == [n[len("note: "):] for n in notes]
    assert document["attacks"]["aa-apgd-t"]["options"]["loss"] == "dlr"
    bad = CliRunner().invoke(robnp_cli(), [
        "attack", str(three_class_model), "--attacks", "autoattack", "--option",
        "autoattack.norm=l1"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines()[-1].startswith("Error: ")
    assert "norm must be one of linf, l2, got 'l1'" in bad.output
    assert "Traceback" not in bad.output


def test_the_study_runs_the_suite_and_keeps_its_notices_in_the_config(tmp_path, no_figures):
    config = StudyConfig(datasets=("blobs", "moons"), n_classes=3, attacks=("autoattack",))
    notices = config.attack_notices()
    assert set(notices) == {"blobs", "moons"}  # 3 and 2 classes
    assert "2 classes" in notices["moons"][0] and "3 classes" in notices["blobs"][0]
    assert "attack_notices" in config.to_dict()
    assert "attack_notices" not in StudyConfig().to_dict()
    assert StudyConfig(datasets=("blobs",), n_classes=10,
                       attacks=("autoattack",)).attack_notices() == {}
    out = tmp_path / "study"
    result = CliRunner().invoke(robnp_cli(), [
        "sweep", "--datasets", "blobs,moons", "--n-classes", "3", "--widths", "8",
        "--seeds", "0", "--n-samples", "200", "--max-epochs", "20", "--epsilons", "0.1",
        "--attacks", "autoattack", "--jobs", "1", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.count("aa-apgd-t runs apgd-dlr") == 1
    assert result.output.count("aa-apgd-t runs apgd-ce again") == 1
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["attack_notices"] == config.attack_notices()
    for row in document["results"]:  # the same stage columns on 2 and 3 classes
        for key in ("aa_apgd_ce", "aa_apgd_t", "aa_fab_t", "aa_square", "autoattack"):
            assert f"{key}_acc" in row and f"{key}_gap" in row
        assert row["autoattack_acc"] == row["aa_square_acc"] <= row["aa_apgd_ce_acc"]


def test_a_stage_name_cannot_also_be_run_on_its_own(blobs_model, monkeypatch):
    from robnp.attacks import ATTACKS, register_attack

    model, X, y = blobs_model
    monkeypatch.setattr("robnp.attacks._registry.ATTACKS", ATTACKS.copy())
    register_attack("aa-apgd-ce", get_attack("apgd-ce").run, APGDCEOptions, "a clash")
    with pytest.raises(ConfigError, match="^attacks: aa-apgd-ce is a stage of suite "
                                          "'autoattack'; run one or the other$"):
        robnp.evaluate(model, X, y, (0.1,), ["aa-apgd-ce", "autoattack"])
