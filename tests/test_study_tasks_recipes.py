"""A study trained by an adversarial recipe: identity, records, table, errors."""

import json

import numpy as np

import pytest
from click.testing import CliRunner

from robnp.errors import ConfigError
from robnp.report import format_summary_table
from robnp.report.tables import training_flops
from robnp.study import StudyConfig
from robnp_cli.main import cli

from study_records import study_records

SMALL = ["--datasets", "moons", "--widths", "4,8,12", "--seeds", "1,2", "--epsilons", "0.05,0.3",
         "--n-samples", "300", "--max-epochs", "20", "--patience", "5", "--lr", "0.02",
         "--quiet", "--jobs", "1"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_study_s_config_and_task_keys_do_not_mention_a_recipe():
    config = StudyConfig()
    assert not {"recipe", "train_eps", "recipe_options"} & set(config.to_dict())
    # The study's training settings, exactly the fields it always hashed.
    assert config.tasks()[0].identity()["train"] == {
        "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "adam_eps": 1e-8, "batch_size": 256,
        "max_epochs": 2000, "patience": 50, "min_delta": 1e-5, "seed": 42,
        "loss": "cross_entropy"}


def test_a_recipe_and_its_radius_are_part_of_every_task_s_identity():
    standard = StudyConfig(widths=(8,), seeds=(1,))
    trades = standard.replace(recipe="trades", train_eps=0.1)
    wider = trades.replace(train_eps=0.2)
    stronger = trades.replace(recipe_options={"beta": 6.0})
    keys = {c.tasks()[0].key for c in (standard, trades, wider, stronger)}
    assert len(keys) == 4
    assert trades.tasks()[0].train.recipe == "trades"
    assert trades.tasks()[0].train.recipe_options.eps == 0.1
    assert stronger.tasks()[0].train.recipe_options.beta == 6.0


def test_recipe_settings_round_trip_and_defaults_spelled_out_are_the_same_study():
    config = StudyConfig(recipe="trades", train_eps=0.1, recipe_options={"beta": 6.0})
    block = config.to_dict()
    assert block["recipe"] == "trades" and block["train_eps"] == 0.1
    assert block["recipe_options"]["beta"] == 6.0 and block["recipe_options"]["eps"] == 0.1
    again = StudyConfig.from_dict(json.loads(json.dumps(block)))
    assert again == config and again.fingerprint() == config.fingerprint()
    default_steps = config.recipe_settings().steps
    spelled = config.replace(recipe_options={"beta": 6.0, "steps": default_steps})
    assert spelled == config


@pytest.mark.parametrize("changes, needle", [
    ({"recipe": "trades"}, "needs train_eps"),
    ({"recipe": "standard", "train_eps": 0.1}, "train_eps is for adversarial recipes"),
    ({"recipe": "trades", "train_eps": -0.1}, "train_eps must be"),
    ({"recipe": "trades", "train_eps": float("nan")}, "train_eps must be"),
    ({"recipe": "nope"}, "unknown recipe 'nope'"),
    ({"recipe": "trades", "train_eps": 0.1, "recipe_options": {"beta": -1.0}}, "beta"),
    ({"recipe": "trades", "train_eps": 0.1, "recipe_options": {"eps": 0.2}}, "train_eps"),
    ({"recipe": "trades", "train_eps": 0.1, "recipe_options": {"gamma": 1}}, "unknown option"),
])
def test_bad_recipe_settings_are_one_clear_error(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        StudyConfig(**changes)


def test_the_table_gains_a_flops_column_only_when_rows_carry_training_flops():
    def clean(dataset, seed, width):
        return 0.9

    def robust(attack, dataset, seed, width, eps):
        return 0.8

    plain = study_records(["moons"], [1, 2], [4, 8, 16], [0.1], clean=clean, robust=robust)
    costed = study_records(["moons"], [1, 2], [4, 8, 16], [0.1], clean=clean, robust=robust,
                           train_flops=2.5e9)
    from robnp.report import build_results

    config = StudyConfig(datasets=("moons",), widths=(4, 8, 16), seeds=(1, 2),
                         epsilons=(0.1,)).to_dict()
    plain_doc = build_results(plain, config, {})
    costed_doc = build_results(costed, config, {})
    assert "Train FLOPs" not in format_summary_table(plain_doc)
    table = format_summary_table(costed_doc)
    assert "Train FLOPs" in table and "2.5e+09" in table
    assert training_flops(costed_doc, "moons") == {4: 2.5e9, 8: 2.5e9, 16: 2.5e9}


def test_a_pgd_at_sweep_records_its_recipe_and_what_each_training_cost(tmp_path):
    out = tmp_path / "at"
    result = run("sweep", *SMALL, "--recipe", "pgd-at", "--train-eps", "0.1", "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["recipe"] == "pgd-at" and doc["config"]["train_eps"] == 0.1
    flops = [row["train_flops"] for row in doc["results"]]
    assert all(f > 0 for f in flops)
    assert all("train_flops" in task for task in doc["tasks"])
    # A wider model costs more per epoch; FLOPs per epoch grow with the width.
    per_epoch = {}
    for task in doc["tasks"]:
        per_epoch.setdefault(task["hidden_width"], []).append(task["train_flops"] / task["epochs"])
    widths = sorted(per_epoch)
    assert all(min(per_epoch[a]) < min(per_epoch[b]) for a, b in zip(widths, widths[1:]))
    assert "Train FLOPs" in result.output
    # Resuming with another radius is another study.
    again = run("sweep", *SMALL, "--recipe", "pgd-at", "--train-eps", "0.2", "--out", out,
                "--resume")
    assert again.exit_code == 2 and "train-eps" in again.output


@pytest.mark.parametrize("args, needle", [
    (["--recipe", "trades"], "needs train_eps"),
    (["--recipe", "bogus"], "unknown recipe"),
    (["--recipe", "trades", "--train-eps", "-1"], "train_eps must be"),
    (["--recipe", "trades", "--train-eps", "nan"], "train_eps must be"),
])
def test_bad_sweep_recipes_are_one_line_and_exit_2(tmp_path, args, needle):
    result = run("sweep", *SMALL, *args, "--out", tmp_path / "x")
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_the_objective_is_what_the_recipe_minimises():
    from robnp import MLP, make_dataset
    from robnp.losses import mean_loss
    from robnp.training.fit import TrainConfig, objective

    X, y = make_dataset("moons", 300, 0.15, seed=3)
    model = MLP(2, (8, 8), 2, seed=0)
    clean = mean_loss(model, X, y)
    standard = TrainConfig(optimizer="sgd")
    assert objective(model, X, y, standard) == pytest.approx(clean, rel=1e-6)
    no_kl = TrainConfig(recipe="trades", recipe_options={"eps": 0.1, "beta": 0.0,
                                                          "smoothing": 0.0})
    assert objective(model, X, y, no_kl) == pytest.approx(clean, rel=1e-6)
    attacked = objective(model, X, y, TrainConfig(recipe="pgd-at", train_eps=0.3))
    assert attacked > clean + 1e-3
    # The start is drawn from the seed: the same seed, the same value.
    at = TrainConfig(recipe="pgd-at", train_eps=0.3)
    assert objective(model, X, y, at, seed=5) == objective(model, X, y, at, seed=5)


def test_train_eps_and_other_recipe_options_combine():
    from robnp.training.fit import TrainConfig

    config = TrainConfig(recipe="trades", train_eps=0.2, recipe_options={"beta": 3.0})
    assert (config.eps, config.recipe_options.beta) == (0.2, 3.0)
    with pytest.raises(ConfigError, match="beta"):
        TrainConfig(recipe="trades", train_eps=0.2, recipe_options={"beta": -1.0})


@pytest.mark.parametrize("settings", [{}, {"recipe": "trades", "train_eps": 0.1},
                                      {"recipe": "pgd-at", "train_eps": 0.1,
                                       "optimizer": "sgd", "momentum": 0.9}])
def test_epoch_flops_from_sizes_is_what_training_records(settings):
    from robnp import MLP, make_dataset
    from robnp.training.fit import TrainConfig, epoch_flops, fit

    X, y = make_dataset("circles", 300, 0.15, seed=1)
    config = TrainConfig(max_epochs=3, patience=None, batch_size=128, **settings)
    model = MLP(2, (8, 8), 2, seed=0)
    history = fit(model, X, y, config)
    expected = epoch_flops(model.layer_sizes, config, len(y))
    assert np.array_equal(history.flops_per_epoch, np.full(3, expected))
    # An epoch over more rows costs more: nothing is a constant.
    assert epoch_flops(model.layer_sizes, config, 2 * len(y)) > expected


def test_a_config_file_holds_the_recipe_and_its_options(tmp_path):
    from robnp.study import load_config_file

    path = tmp_path / "trades.toml"
    path.write_text('recipe = "trades"\ntrain-eps = 0.1\n\n[recipe_options]\nbeta = 2.0\n'
                    'steps = 5\n')
    config = StudyConfig.from_mapping(load_config_file(path))
    options = config.tasks()[0].train.recipe_options
    assert (options.eps, options.beta, options.steps) == (0.1, 2.0, 5)
    bad = tmp_path / "bad.toml"
    bad.write_text('recipe = "trades"\ntrain-eps = 0.1\n\n[recipe_options]\nbeta = -2.0\n')
    with pytest.raises(ConfigError, match="beta"):
        StudyConfig.from_mapping(load_config_file(bad))


def test_train_options_reach_every_task_and_round_trip():
    config = StudyConfig(widths=(8,), seeds=(1,), recipe="trades", train_eps=0.1,
                         patience=0, max_epochs=30,
                         train_options={"optimizer": "sgd", "momentum": 0.9,
                                        "nesterov": True, "schedule": "one-cycle",
                                        "ema": True, "weight_decay": 0.0})
    train = config.tasks()[0].train
    assert (train.optimizer, train.momentum, train.nesterov, train.schedule, train.ema,
            train.patience) == ("sgd", 0.9, True, "one-cycle", True, None)
    # the default-valued weight_decay is dropped: one spelling, one study
    assert dict(config.train_options) == {"optimizer": "sgd", "momentum": 0.9,
                                          "nesterov": True, "schedule": "one-cycle",
                                          "ema": True}
    block = config.to_dict()
    assert block["train_options"]["optimizer"] == "sgd" and block["patience"] is None
    assert StudyConfig.from_dict(json.loads(json.dumps(block))) == config
    plain = config.replace(train_options={})
    assert plain.tasks()[0].key != config.tasks()[0].key
    assert "train_options" not in StudyConfig().to_dict()


@pytest.mark.parametrize("table, needle", [
    ({"lr": 0.1}, "study's own setting"),
    ({"optimiser": "sgd"}, "unknown training setting 'optimiser'"),
    ({"momentum": 1.5, "optimizer": "sgd"}, "momentum"),
    ({"schedule": "cosine"}, "early stopping"),
])
def test_bad_train_options_are_one_clear_error(table, needle):
    with pytest.raises(ConfigError, match=needle):
        StudyConfig(train_options=table)


def test_a_sweep_runs_the_paper_s_training_from_a_config_file(tmp_path):
    path = tmp_path / "paper.toml"
    path.write_text('recipe = "trades"\ntrain-eps = 0.1\npatience = 0\nmax-epochs = 4\n'
                    'lr = 0.05\n\n[train_options]\noptimizer = "sgd"\nmomentum = 0.9\n'
                    'nesterov = true\nschedule = "one-cycle"\nema = true\n')
    out = tmp_path / "paper"
    # the command line wins over the file: leave out SMALL's training options
    small = ["--datasets", "moons", "--widths", "4,8,12", "--seeds", "1,2", "--epsilons",
             "0.05,0.3", "--n-samples", "300", "--quiet", "--jobs", "1"]
    result = run("sweep", *small, "--config", path, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["train_options"]["schedule"] == "one-cycle"
    assert all(task["epochs"] == 4 for task in doc["tasks"])
