"""The models a sweep keeps: ``OUT/models/<dataset>-seed<seed>-w<width>.npz``.

Each finished task's model is written by the parent process, from the weights its
:class:`~robnp.study.tasks.TaskResult` carries, *before* the task is committed to
the store: the ``.npz`` (:func:`robnp.model.save_model`, no pickle) and then the
JSON beside it, in the format ``robnp train`` writes (``"format": "robnp.train"``,
the task's data and training settings, its history), plus ``study_key``, the
task's key. Both are written to a temporary name and renamed into place. So a
committed task always has its model; a model without its commit (a kill between
the two) is rewritten, bit for bit, when ``--resume`` reruns the task; and a
stored task whose model is missing or belongs to another task (a store written
before models were kept, a deleted file) counts as not done on resume
(:func:`has_model`). ``robnp attack``, ``robnp verify`` and ``robnp plot boundary``
read the data settings from the JSON, so none needs ``--dataset`` or ``--seed``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._io import atomic_write_json
from ..errors import DataError, ModelFileError, StoreError
from ..model import MLP, save_model
from .tasks import Task, TaskResult

__all__ = ["MODELS_DIR", "model_path", "has_model", "write_model"]

#: The directory of ``OUT`` holding the models.
MODELS_DIR = "models"


def model_path(out_dir, task: Task) -> Path:
    """Where the model of ``task`` is kept in ``out_dir``."""
    return Path(out_dir) / MODELS_DIR / f"{task.dataset}-seed{task.seed}-w{task.width}.npz"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def has_model(out_dir, task: Task) -> bool:
    """Whether ``out_dir`` holds the model of ``task``: its ``.npz`` and, beside it,
    a JSON whose ``study_key`` is the task's key (written last, so it marks a
    complete pair)."""
    path = model_path(out_dir, task)
    if not path.is_file():
        return False
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("study_key") == task.key


def write_model(out_dir, task: Task, result: TaskResult) -> Path:
    """Write the model of a finished task and the JSON beside it; a
    :class:`~robnp.errors.StoreError` (one line) when they cannot be written."""
    if result.weights is None or result.trained is None:
        raise StoreError(f"task {task.label}: its result carries no trained model")
    path = model_path(out_dir, task)
    sizes = (task.input_dim, *task.hidden, task.n_classes)
    model = MLP.from_params(sizes, result.weights)
    try:
        path.parent.mkdir(exist_ok=True)
        save_model(model, path)
        atomic_write_json(_sidecar(path), {**result.trained["record"], "study_key": task.key})
    except (OSError, DataError, ModelFileError, StoreError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StoreError(f"cannot write the model of task {task.label} to {path}: {reason}; "
                         f"the tasks stored before are intact, free the space or fix the "
                         f"directory and rerun with --resume") from None
    return path
