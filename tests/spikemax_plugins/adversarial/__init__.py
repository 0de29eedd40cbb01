"""Adversarial properties: every public function, module, metric class and early-exit entry point of the core,
called with a mix of valid and adversarial arguments.

Each drawn call must end in exactly one of:

(a) a result equal to an independent oracle (``spikemax_plugins.reference`` for the losses and metrics, the NumPy
    rule semantics in ``oracles`` for early exit), never NaN where the docs promise none, with the
    gradient of every differentiable input equal to directional finite differences of the reference (float64),
    or to the documented closed form at smoothing 0 where the loss is not differentiable numerically; or
(b) a ``ValueError`` / ``TypeError`` whose message names a faulty argument (or the documented ``RuntimeError``
    for a second derivative at smoothing 0).

The oracle that decides which arguments are faulty is written from the docstrings (``oracles``; the outcome
bookkeeping and the strategies are in ``support``, the loss calls and their oracle in ``loss_oracle``). Outcome
counts are printed at the end of the run by ``tests/conftest.py`` (``-rA`` is not needed; they go to the terminal
reporter). The suite is split by subject: ``test_losses``, ``test_transforms``, ``test_metrics``,
``test_value_checks``, ``test_streaming``, ``test_exit_rule``, ``test_early_exit``.
"""
