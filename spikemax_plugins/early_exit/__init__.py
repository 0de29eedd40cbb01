r"""Early exit: stop simulating a sample once its spike-count decision is confident.

A network trained to decide early (SpikeMax, especially :func:`~spikemax_plugins.spikemax_s`) wastes time steps
and synaptic operations if it is always simulated to the end. An :class:`ExitRule` says, step by step, when a
sample is decided:

* at checkpoint ``k`` (step ``t = checkpoints[k]``), class ``i`` is **admitted** iff ``score_i(t) >=
  thresholds[k]``, where the score is :func:`confidence` of the running counts;
* a sample that has not exited yet **exits** at the first checkpoint where the number of admitted classes is
  between 1 and ``max_set_size``, predicting the admitted class with the highest score (a tie between admitted
  classes: ``-1``, no decision);
* a sample that never exits is decided at step ``T - 1`` by :func:`~spikemax_plugins.predict` on the full counts
  (ties: ``-1``). A sample's **prediction set** is its admitted set at its exit checkpoint (at ``T - 1`` if it
  never exited).

The same rule object runs offline (:func:`evaluate` on a recording) and online (:meth:`ExitRule.start`, then
:meth:`ExitState.update` once per simulated step; :func:`run`, which stops calling the network once every
sample of the batch has exited; :func:`stream`, continuous batching: a pool of batch rows, each at its own step,
where a new sample takes the row of one that exited). All of them decide through one function
(``early_exit.rule.decide_rows``), so they give identical decisions.
:func:`calibrate` makes a rule from recorded spikes of a held-out calibration split:

* ``method="conformal"`` (SpikeCP, Chen, Park and Simeone 2023): per checkpoint, the threshold is the
  ``r``-th largest true-class score of the ``n`` calibration samples, ``r = ceil((1 - alpha / K) (n + 1))``, so
  that each checkpoint admits the true class with probability ``>= 1 - alpha / K``; by Bonferroni over the K
  checkpoints, the true class is in the prediction set at the stopping time with probability ``>= 1 - alpha``
  (for exchangeable calibration and test samples).
* ``method="accuracy"``: one threshold for every checkpoint, the one that minimises the mean exit step on the
  calibration set subject to early-exit accuracy ``>=`` full-window accuracy ``- alpha``.

Scores (:func:`confidence`): ``"probability"``, the spike-count probability of the running counts
``p_i(t) = (c_i(t) + smoothing) / sum_j (c_j(t) + smoothing)`` (scale-free, unlike a softmax of raw counts;
``1 / C`` for every class while all are silent with smoothing 0); ``"margin"``, the count lead
``c_i(t) - max_{j != i} c_j(t)`` (positive only for the unique leader).

from __future__ import annotations

Layout: :mod:`.rule` (scores, :class:`ExitRule`, the decision, :class:`ExitState`, :class:`ExitReport`),
:mod:`.calibration` (:func:`calibrate`), :mod:`.runners` (:func:`evaluate`, :func:`run`, :func:`stream` and its
:class:`SlotNetwork` protocol). Every public name is importable from ``spikemax_plugins.early_exit``; the
torchmetrics twin, :class:`~spikemax_plugins.streaming.EarlyExitMetric`, lives in :mod:`spikemax_plugins.streaming`.
"""

from .calibration import calibrate
from .rule import (
    CONFORMAL_CHECKPOINTS,
    METHODS,
    SCORES,
    ExitReport,
    ExitRule,
    ExitState,
    confidence,
    default_checkpoints,
)
from .runners import SlotNetwork, evaluate, run, stream

__all__ = [
    "SCORES",
    "METHODS",
    "CONFORMAL_CHECKPOINTS",
    "confidence",
    "calibrate",
    "default_checkpoints",
    "evaluate",
    "run",
    "stream",
    "ExitRule",
    "ExitState",
    "ExitReport",
    "SlotNetwork",
]
