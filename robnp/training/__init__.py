"""Building blocks of training: optimizers, learning-rate schedules, weight averaging.

``optim`` (``Adam``, ``AdamW``, ``SGD``) updates a flat parameter vector in place with
a compiled kernel; ``schedules`` gives the step size of every minibatch (constant,
step, cosine, one-cycle); ``ema`` keeps an exponential moving average of the weights;
``recipes`` is the registry of training objectives (``standard`` and the adversarial
ones); ``fit`` is the training loop that combines them, ``stream`` the one-pass data
regime (``SampleStream``, ``fit_stream``).
They follow the scaling-law paper's training recipe (Bartoldson et al., 2024, Section
3.1: SGD with Nesterov momentum, a one-cycle cosine schedule, weight averaging).
"""
