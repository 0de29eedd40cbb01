"""NumPy (float64) reference implementations of every loss and metric, for testing.

Written independently of the torch code, for clarity over speed: explicit loops over samples, classes and
time steps, the spike-count probability computed directly from its definition, and
:func:`torch.nn.functional.cross_entropy`'s label-smoothing and weighting rules written out term by term.
Inputs are NumPy arrays (or anything ``np.asarray`` accepts); outputs are NumPy float64 / int64.
"""

from ._early_exit import (
    exit_calibrate,
    exit_confidence,
    exit_conformal_rank,
    exit_default_checkpoints,
    exit_evaluate,
)
from ._losses_and_metrics import (
    accuracy,
    accuracy_over_time,
    mse_count,
    predict,
    spike_counts,
    spikemax_g,
    spikemax_s,
    synaptic_operations,
    time_to_decision,
)
from ._penalties import activity_penalty, activity_penalty_gradient

__all__ = [
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
    "spikemax_g",
    "spikemax_s",
    "mse_count",
    "activity_penalty",
    "activity_penalty_gradient",
    # early exit
    "exit_confidence",
    "exit_default_checkpoints",
    "exit_evaluate",
    "exit_conformal_rank",
    "exit_calibrate",
]
