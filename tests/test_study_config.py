"""Specification of StudyConfig as a composition of the library's own configs."""

import pytest

from robnp.attacks import PGDOptions
from robnp.errors import ConfigError
from robnp.study import StudyConfig
from robnp.training.fit import TrainConfig


def test_the_study_config_block_is_unchanged_by_the_attack_registry():
    assert "attacks" not in StudyConfig().to_dict()
    assert "attacks" not in StudyConfig(attacks=("fgsm", "pgd")).to_dict()
    assert StudyConfig(attacks=("pgd", "fgsm")).to_dict()["attacks"] == {"pgd": {}, "fgsm": {}}


def test_tasks_carry_the_library_config_objects():
    config = StudyConfig(widths=(4,), seeds=(3,), datasets=("moons",), lr=0.01, pgd_steps=7)
    (task,) = config.tasks()
    assert task.train == TrainConfig(lr=0.01, seed=3)
    names = [name for name, _ in task.attacks]
    assert names == ["fgsm", "pgd"]
    assert task.attacks[1][1] == PGDOptions(steps=7, step_fraction=0.25)


def test_attack_settings_are_part_of_a_task_identity():
    base = StudyConfig(widths=(4,), seeds=(3,), datasets=("moons",))
    keys = {config.tasks()[0].key for config in (
        base, base.replace(attacks=("fgsm",)), base.replace(attacks={"pgd": {"loss": "cw_margin"}}),
        base.replace(pgd_steps=11))}
    assert len(keys) == 4


def test_round_trip_through_the_stored_dict():
    config = StudyConfig(widths=(4, 8), attacks={"fgsm": {}, "pgd": {"random_start": True}},
                         pgd_steps=3)
    again = StudyConfig.from_dict(config.to_dict())
    assert again == config and again.fingerprint() == config.fingerprint()


@pytest.mark.parametrize("changes,needle", [
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"test_fraction": 1.0}, "test_fraction must be a finite number in (0, 1)"),
    ({"widths": (4, True)}, "widths must hold integers >= 1"),
    ({"attacks": "fgsm,pgd,nope"}, "unknown attack 'nope'"),
    ({"attacks": 3}, "attacks must be a list"),
])
def test_one_vocabulary_of_errors(changes, needle):
    with pytest.raises(ConfigError) as error:
        StudyConfig(**changes)
    assert needle in str(error.value)
