"""The clean points of one evaluation and the input gradients there.

Every attack that starts from the clean points takes its first step along the
gradient of its loss at them: FGSM's one step, PGD's first step at every radius, and
the evaluation's check for gradients that are exactly zero. :func:`robnp.evaluate`
makes one :class:`CleanPoints` and hands it to every attack it runs, so each loss's
gradient there is computed once per evaluation; an attack called on its own makes
its own.
"""

from __future__ import annotations

import numpy as np

from ..loss_codes import loss_code
from ._threat import chunked_input_gradient

__all__ = ["CleanPoints"]


class CleanPoints:
    """Checked clean inputs ``X`` (C-contiguous, the model's dtype) and labels ``y``
    of the model seen as ``target`` (a :class:`~robnp.attacks._threat.AttackedModel`), and
    the input gradient of each loss asked for, computed on first request.

    Lives for one evaluation (or one attack call); the gradients it hands out are
    read-only, so that no attack can change what the next one receives.
    """

    def __init__(self, target, X: np.ndarray, y: np.ndarray):
        self.target, self.X, self.y = target, X, y
        self._gradients: dict[str, np.ndarray] = {}

    def gradient(self, loss: str) -> np.ndarray:
        """dL/dX of the mean ``loss`` over the rows at ``X``, of shape (n_samples,
        n_features) in the model's dtype: for an MLP the numbers of
        :func:`robnp.input_gradient`, computed in chunks on threads
        (:func:`~robnp.attacks._threat.chunked_input_gradient`); the model's own
        ``input_gradient`` otherwise."""
        if loss not in self._gradients:
            if self.target.fast:
                gradient = chunked_input_gradient(self.target.model, self.X, self.y,
                                                  loss_code(loss))
            else:
                gradient = self.target.evaluate(self.X, self.y, self.y, loss)[2]
            view = gradient.view()  # read-only without touching the model's own array
            view.flags.writeable = False
            self._gradients[loss] = view
        return self._gradients[loss]
