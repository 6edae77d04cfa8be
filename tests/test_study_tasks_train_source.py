"""A generator file as a study's training data: the training rows change, the test
rows, the default study's keys and its config block do not."""

import numpy as np
import pytest

from robnp.data.generators import DataTask, fit_generator, save_generator
from robnp.errors import ConfigError, DataError, ModelFileError
from robnp.study import StudyConfig
from robnp.study.tasks import TrainSource, task_data

SETTINGS = {"datasets": ("moons",), "widths": (8,), "seeds": (5,), "n_samples": 400}


@pytest.fixture(scope="module")
def kde_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "kde.npz"
    return save_generator(fit_generator(DataTask("moons", noise=0.15), "kde", 30, 2, h=0.05),
                          path)


def test_the_default_study_has_no_train_source():
    config = StudyConfig(**SETTINGS)
    assert config.train_source is None and "train_source" not in config.to_dict()
    assert "train_source" not in config.tasks()[0].identity()


def test_a_train_source_replaces_the_training_rows_only(kde_file):
    plain = StudyConfig(**SETTINGS)
    config = StudyConfig(**SETTINGS, train_source=kde_file)
    (task,), (base,) = config.tasks(), plain.tasks()
    assert task.key != base.key
    assert config.to_dict()["train_source"]["path"] == kde_file
    assert task.identity()["train_source"]["generator"]["kind"] == "kde"
    X_train, X_test, y_train, y_test = task_data(task)
    B_train, B_test, b_train, b_test = task_data(base)
    np.testing.assert_array_equal(X_test, B_test)
    np.testing.assert_array_equal(y_test, b_test)
    assert X_train.shape == B_train.shape and X_train.dtype == B_train.dtype
    X, y = task.train_source.load().sample(len(y_train), task.seed)
    np.testing.assert_array_equal(X_train, X.astype(X_train.dtype))
    np.testing.assert_array_equal(y_train, y)
    # the key is the generator's content, not its path
    moved = StudyConfig(**SETTINGS, train_source=TrainSource("elsewhere.npz",
                                                             task.train_source.generator,
                                                             task.train_source.sha256))
    assert moved.tasks()[0].key == task.key


def test_a_stored_config_reads_back_without_the_file(kde_file):
    config = StudyConfig(**SETTINGS, train_source=kde_file)
    again = StudyConfig.from_dict(config.to_dict())
    assert again.train_source == config.train_source
    assert again.fingerprint() == config.fingerprint()
    assert again.tasks()[0].key == config.tasks()[0].key


@pytest.mark.parametrize("settings", [
    {"datasets": ("circles",)}, {"noise": 0.1}, {"input_dim": 3},
    {"datasets": ("moons", "circles")}])
def test_a_generator_of_another_task_is_one_line(kde_file, settings):
    with pytest.raises(ConfigError, match=r"train_source .* holds a generator of moons "
                                          r"\(noise 0.15, input_dim 2, 2 classes\), not of "
                                          r"the study's"):
        StudyConfig(**{**SETTINGS, **settings}, train_source=kde_file)


def test_bad_and_changed_files(kde_file, tmp_path):
    with pytest.raises(ConfigError, match=r"train_source must be the path"):
        StudyConfig(**SETTINGS, train_source=3)
    with pytest.raises(ModelFileError):
        StudyConfig(**SETTINGS, train_source=str(tmp_path / "missing.npz"))
    path = str(tmp_path / "g.npz")
    save_generator(fit_generator(DataTask("moons", noise=0.15), "kde", 30, 2, h=0.05), path)
    config = StudyConfig(**SETTINGS, train_source=path)
    save_generator(fit_generator(DataTask("moons", noise=0.15), "kde", 30, 3, h=0.05), path)
    with pytest.raises(DataError, match=r"has changed since the study took it"):
        task_data(config.tasks()[0])
