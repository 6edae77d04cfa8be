"""The scaling study's grid: sources, the configuration's checks, the batch and
step-size rule, the TRADES recipe each run trains with, and the runs' identities."""

import math

import pytest

from robnp.errors import ConfigError
from robnp.scaling.study import PRESETS, ScalingConfig, Source, preset

TINY = dict(widths=(2, 4), data_sizes=(256, 512), checkpoints=(0.5, 1.0), n_test=50,
            eval_steps=3)


def test_sources_round_trip_and_keep_their_knobs():
    for text in ("true", "kde:m=64,h=0.05", "kde:h=0.5,m=8", "diffusion:m=16,steps=5"):
        source = Source.parse(text)
        assert Source.parse(source.spec()) == source
    kde = Source.parse("kde:h=0.5,m=8")
    assert (kde.kind, kde.m, dict(kde.knobs)) == ("kde", 8, {"h": 0.5})
    assert kde.label() == "kde-m8-h0.5"


@pytest.mark.parametrize("text, words", [
    ("gan:m=3", "gan"), ("kde:h=0.1", "needs m"), ("true:m=5", "takes no m"),
    ("kde:m=8,h=0", "h"), ("kde:m=8,h=x", "not a number"), ("kde:m=0,h=0.1", "m"),
    ("kde:m=8;h=0.1", "not a number"), ("", "kind"),
])
def test_a_bad_source_is_one_line_naming_it(text, words):
    with pytest.raises(ConfigError, match=words) as info:
        Source.parse(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("changes, words", [
    (dict(widths=()), "at least one"), (dict(widths=(8, 4)), "strictly increasing"),
    (dict(data_sizes=(512, 512)), "strictly increasing"), (dict(widths=(0, 4)), "widths"),
    (dict(eps=5.0), "scale"), (dict(eps=0.0), "eps"), (dict(checkpoints=(0.5,)), "end at 1"),
    (dict(checkpoints=(0.0, 1.0)), r"\(0, 1\]"), (dict(data_sizes=(4, 512)), "periods"),
    (dict(sources=("true", "true")), "distinct"), (dict(seeds=()), "seeds"),
    (dict(extra_seeds=(0,)), "extra_seeds"), (dict(optimizer="rmsprop"), "optimizer"),
    (dict(dataset="nope"), "nope"), (dict(optimal_budget=1e3), "optimal_budget"),
    (dict(optimal_factors=(0.5, 2.0)), "hold 1"), (dict(quality_measure="tv"), "quality_measure"),
])
def test_bad_settings_are_one_line(changes, words):
    with pytest.raises(ConfigError, match=words) as info:
        ScalingConfig(**{**TINY, **changes})
    assert "\n" not in str(info.value)


def test_unknown_setting_and_preset_are_refused():
    with pytest.raises(ConfigError, match="unknown setting 'widht'"):
        ScalingConfig.from_mapping({"widht": (4,)})
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")


def test_batch_rule_keeps_the_steps_then_grows_to_its_cap():
    config = ScalingConfig(**{**TINY, "batch_size": 128, "batch_from": 1024,
                              "max_batch_size": 512})
    assert [config.batch_size_for(D) for D in (256, 1024, 2048, 4096, 8192, 1 << 20)] == \
        [128, 128, 256, 512, 512, 512]
    # below the cap the number of steps stays batch_from / batch_size
    assert 2048 // config.batch_size_for(2048) == 1024 // 128


def test_each_run_trains_with_the_papers_trades_recipe():
    config = ScalingConfig(**TINY)
    train = config.train_config(512, seed=3)
    options = train.recipe_options
    assert train.recipe == "trades" and options.eps == config.eps
    assert (options.beta, options.steps, options.step_fraction, options.smoothing) == \
        (5.0, 10, 0.25, 0.1)
    assert train.schedule == "one-cycle" and train.ema and train.patience is None
    assert train.seed == 3 and train.batch_size == config.batch_size_for(512)
    assert (train.optimizer, train.momentum, train.nesterov, train.weight_decay) == \
        ("sgd", 0.9, True, 5e-4)
    adam = config.replace(optimizer="adam", lr=(3e-3,), lr_bounds=()).train_config(512, 0)
    assert adam.optimizer == "adam" and adam.lr == 3e-3


def test_step_size_rule_follows_the_data_size():
    config = ScalingConfig(**{**TINY, "lr": (0.5, 0.3, 0.2), "lr_bounds": (1000, 10 ** 6)})
    assert [config.lr_for(D) for D in (256, 1000, 1001, 10 ** 6, 10 ** 7)] == \
        [0.5, 0.5, 0.3, 0.3, 0.2]
    assert config.train_config(2048, 0).lr == 0.3
    with pytest.raises(ConfigError, match="one step size more"):
        ScalingConfig(**{**TINY, "lr": (0.5, 0.3), "lr_bounds": ()})


def test_the_grid_and_the_keys():
    config = ScalingConfig(**{**TINY, "sources": ("true", "kde:m=8,h=0.2"),
                              "extra_seeds": (5,)})
    tasks = config.tasks()
    assert len(tasks) == 2 * (2 * 2 + 1)
    assert len({task.key for task in tasks}) == len(tasks)
    extra = [t for t in tasks if t.seed == 5]
    assert {(t.width, t.examples) for t in extra} == {(4, 512)}
    # a run's key depends on the run, not on the grid around it
    wider = config.replace(widths=(2, 4, 8))
    assert {t.key for t in tasks if t.width in (2, 4) and t.seed == 0} <= \
        {t.key for t in wider.tasks()}
    assert config.replace(eps=0.02).tasks()[0].key != tasks[0].key
    # cost grows with the model and the data
    by = {(t.source, t.width, t.examples, t.seed): t.cost() for t in tasks}
    assert by[("true", 4, 256, 0)] > by[("true", 2, 256, 0)]
    assert by[("true", 2, 512, 0)] > by[("true", 2, 256, 0)]


def test_configuration_round_trips_through_its_dict():
    config = preset("small")
    again = ScalingConfig.from_dict(config.to_dict())
    assert again == config and again.fingerprint() == config.fingerprint()
    with pytest.raises(ValueError):
        ScalingConfig.from_dict({"widths": [4]})
    assert set(PRESETS) == {"small", "paper"}


def test_presets_span_what_the_study_needs():
    small, paper = preset("small"), preset("paper")
    sizes = lambda c: [t.sizes for t in c.tasks()]
    from robnp.model import MLP

    for config, decades in ((small, 2.5), (paper, 2.5)):
        n = [MLP(*s[:1], s[1:-1], s[-1]).n_params for s in {tuple(x) for x in sizes(config)}]
        assert math.log10(max(n) / min(n)) >= decades
        assert len(config.widths) >= 4 and len(config.data_sizes) >= 4
        assert len(config.sources) >= 3
    assert max(paper.data_sizes) >= 10 ** 7
    n_paper = MLP(paper.input_dim, (paper.widths[-1],) * paper.depth, 2).n_params
    assert n_paper >= 10 ** 6
